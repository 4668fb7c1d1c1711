//! Reading a backup from Google Drive: a streamed `alt=media` download that picks up where it
//! was after a dropped connection (`Range: bytes=N-`) and checks size and SHA-256 at the end,
//! like the folder store's reader.

use std::io::{self, Read};
use std::sync::Arc;

use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use super::{path_escape, Shared};

enum State {
    Reading,
    Verified,
    Mismatch,
}

pub(crate) struct DriveReader {
    shared: Arc<Shared>,
    file_id: String,
    name: String,
    resp: Option<Response>,
    /// Bytes of the file handed out so far.
    pos: u64,
    /// Bytes still to skip from the current response (a server that ignored `Range`).
    skip: u64,
    /// Reads in a row that failed without progress.
    failures: u32,
    hasher: Sha256,
    expected_bytes: u64,
    expected_sha256: String,
    state: State,
}

fn checksum_mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the backup file does not match its recorded checksum",
    )
}

impl DriveReader {
    pub fn new(
        shared: Arc<Shared>,
        file_id: String,
        name: String,
        expected_bytes: u64,
        expected_sha256: String,
    ) -> Self {
        DriveReader {
            shared,
            file_id,
            name,
            resp: None,
            pos: 0,
            skip: 0,
            failures: 0,
            hasher: Sha256::new(),
            expected_bytes,
            expected_sha256,
            state: State::Reading,
        }
    }

    /// Starts (or restarts, at `pos`) the download.
    fn open(&mut self) -> io::Result<()> {
        let api = self.shared.api();
        let url = api.drive_url(&format!("files/{}", path_escape(&self.file_id)));
        let pos = self.pos;
        let resp = api
            .run(
                &|c: &Client| {
                    let r = c.get(&url).query(&[("alt", "media")]);
                    if pos > 0 {
                        r.header(RANGE, format!("bytes={pos}-"))
                    } else {
                        r
                    }
                },
                &|r| Ok(r),
            )
            .map_err(|e| {
                let context = format!("could not download {} from Google Drive", self.name);
                io::Error::other(self.shared.fail(&context, e))
            })?;
        self.skip = 0;
        if pos > 0 {
            let start = if resp.status() == StatusCode::PARTIAL_CONTENT {
                resp.headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok())
            } else {
                Some(0)
            };
            match start {
                Some(s) if s == pos => {}
                Some(0) => self.skip = pos, // the whole file again: skip what was read
                _ => {
                    return Err(io::Error::other(
                        "Google Drive answered a resumed download with the wrong part of the file",
                    ))
                }
            }
        }
        self.resp = Some(resp);
        Ok(())
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let policy = self.shared.api().retry.clone();
        loop {
            if self.resp.is_none() {
                self.open()?;
            }
            let resp = self.resp.as_mut().expect("opened");
            match resp.read(buf) {
                Ok(n) if self.skip > 0 && n > 0 => {
                    let drop = (n as u64).min(self.skip) as usize;
                    self.skip -= drop as u64;
                    if drop < n {
                        buf.copy_within(drop..n, 0);
                        return Ok(n - drop);
                    }
                }
                Ok(n) => {
                    if n > 0 {
                        self.failures = 0;
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.resp = None;
                    self.failures += 1;
                    if self.failures >= policy.max_tries {
                        return Err(io::Error::new(
                            e.kind(),
                            format!(
                                "could not download {} from Google Drive: the connection kept breaking ({e}; gave up after {} tries)",
                                self.name, self.failures
                            ),
                        ));
                    }
                    tracing::debug!(offset = self.pos, error = %e, "download interrupted; resuming");
                    policy.wait(self.failures - 1, None);
                }
            }
        }
    }
}

impl Read for DriveReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.state {
            State::Verified => return Ok(0),
            State::Mismatch => return Err(checksum_mismatch()),
            State::Reading => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.read_some(buf)?;
        self.pos += n as u64;
        self.hasher.update(&buf[..n]);
        let at_end = n == 0;
        if self.pos > self.expected_bytes
            || (at_end
                && (self.pos != self.expected_bytes
                    || hex::encode(std::mem::take(&mut self.hasher).finalize())
                        != self.expected_sha256))
        {
            self.state = State::Mismatch;
            self.resp = None;
            return Err(checksum_mismatch());
        }
        if at_end {
            self.state = State::Verified;
            self.resp = None;
        }
        Ok(n)
    }
}
