//! Which backups at a destination are the user's own.
//!
//! Backups are encrypted to a public key, so anyone who can write to the destination can put a
//! well-formed backup there, and age has no sender authentication. Every backup Driveback makes
//! therefore carries, in its commit mark (Drive `appProperties`, folder sidecar), an Ed25519
//! signature over its file name, size, SHA-256, id, database, time, document count and status.
//! The signing key is derived (HKDF-SHA256) from the destination's backup key, so it sits inside
//! the passphrase-protected key file and in the keyring of the devices that use it; its public
//! half is recorded with the confirmed backup key (`key-pins.json`).
//!
//! Stores opened by the service are wrapped in [`AuthenticatedStore`]: listing, "latest",
//! retention and restore see only backups whose signature verifies and whose time is not in the
//! future; the rest is reported ([`RemoteStore::ignored`]) and never deleted.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::Signer as _;
use serde::Serialize;

use crate::keys::BackupKey;
use crate::manifest::BackupStatus;
use crate::store::{ChainLink, RemoteStore, StoreError, StoredBackup, UploadSink};

/// What the signing key is derived for (HKDF `info`): a new purpose would get a new key.
const KEY_INFO: &[u8] = b"driveback backup signing key v1";
/// The first line of every signed statement.
const STATEMENT_HEADER: &str = "driveback backup signature v1";
/// How far ahead of this device's clock a backup may be dated and still count (clocks differ a
/// little between devices).
pub const FUTURE_TOLERANCE: chrono::Duration = chrono::Duration::minutes(10);
/// Longest database name the commit marks carry (Google Drive's app properties hold 124 bytes,
/// key included): the signature covers the name as the mark holds it.
pub const MARKED_DATABASE_BYTES: usize = 116;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The database name as commit marks hold it: at most [`MARKED_DATABASE_BYTES`], cut at a
/// character boundary (the full name is in the manifest).
pub fn marked_database(name: &str) -> &str {
    if name.len() <= MARKED_DATABASE_BYTES {
        return name;
    }
    let mut cut = MARKED_DATABASE_BYTES;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    &name[..cut]
}

/// The facts a signature covers, one per line.
#[allow(clippy::too_many_arguments)]
fn statement(
    file: &str,
    bytes: u64,
    sha256: &str,
    id: &str,
    database: &str,
    created: DateTime<Utc>,
    documents: u64,
    status: BackupStatus,
    link: Option<&ChainLink>,
) -> Vec<u8> {
    let status = match status {
        BackupStatus::Complete => "complete",
        BackupStatus::Partial => "partial",
    };
    let mut s = format!(
        "{STATEMENT_HEADER}\nfile={file}\nbytes={bytes}\nsha256={}\nid={id}\ndatabase={}\ncreated={}\ndocuments={documents}\nstatus={status}\n",
        sha256.to_ascii_lowercase(),
        marked_database(database),
        created.to_rfc3339_opts(SecondsFormat::AutoSi, true),
    );
    // A backup of the incremental layout also signs its place in its chain (one-file backups'
    // statements are unchanged, so their signatures still verify).
    if let Some(link) = link {
        s.push_str(&format!("chain={}\n", link.chain));
        s.push_str(&format!(
            "parent={}\n",
            link.parent.as_deref().unwrap_or("none")
        ));
    }
    s.into_bytes()
}

/// Signs backups: only devices that hold the backup key can.
pub struct Signer(ed25519_dalek::SigningKey);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.verifier())
    }
}

impl Signer {
    /// The signing key that belongs with `key` (the same backup key always gives the same one).
    pub fn for_key(key: &BackupKey) -> Self {
        use secrecy::ExposeSecret;
        let secret = key.to_secret_string();
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, secret.expose_secret().as_bytes());
        let mut seed = [0u8; 32];
        hk.expand(KEY_INFO, &mut seed)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        secrecy::zeroize::Zeroize::zeroize(&mut seed);
        Signer(signing)
    }

    pub fn verifier(&self) -> Verifier {
        Verifier(self.0.verifying_key())
    }

    /// The signature of a backup about to be committed (base64url, 86 characters).
    pub fn sign(
        &self,
        file: &str,
        bytes: u64,
        sha256: &str,
        summary: &crate::store::BackupSummary,
    ) -> String {
        let message = statement(
            file,
            bytes,
            sha256,
            &summary.id,
            &summary.database,
            summary.created,
            summary.documents,
            summary.status,
            summary.link.as_ref(),
        );
        B64.encode(self.0.sign(&message).to_bytes())
    }

    /// Signs what `sink` has written and commits it with `summary`.
    pub fn commit(
        &self,
        file: &str,
        sink: Box<dyn UploadSink>,
        summary: &crate::store::BackupSummary,
    ) -> Result<StoredBackup, StoreError> {
        let (bytes, sha256) = sink.written();
        let mut summary = summary.clone();
        summary.signature = Some(self.sign(file, bytes, &sha256, &summary));
        sink.commit(&summary)
    }
}

/// Checks backups' signatures: the public half of a [`Signer`] (base64url in `key-pins.json`).
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier(ed25519_dalek::VerifyingKey);

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&B64.encode(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({self})")
    }
}

impl std::str::FromStr for Verifier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bytes: [u8; 32] = B64
            .decode(s.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| "not a signing key".to_string())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Verifier)
            .map_err(|_| "not a signing key".to_string())
    }
}

impl Verifier {
    /// Whether `backup`, as listed, is one the holder of the backup key signed.
    pub fn check(&self, backup: &StoredBackup) -> Result<(), &'static str> {
        let Some(sig) = backup.signature.as_deref() else {
            return Err("it is not signed by your backup key");
        };
        let signature = B64
            .decode(sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| ed25519_dalek::Signature::from_bytes(&b))
            .ok_or("its signature is damaged")?;
        let message = statement(
            &backup.file,
            backup.bytes,
            &backup.sha256,
            &backup.id,
            &backup.database,
            backup.created,
            backup.documents,
            backup.status,
            backup.link.as_ref(),
        );
        self.0
            .verify_strict(&message, &signature)
            .map_err(|_| "its signature does not match your backup key or its contents")
    }
}

/// A file at the destination that looks like a backup but does not count as one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub file: String,
    pub id: String,
    /// Why, e.g. "it is not signed by your backup key".
    pub reason: String,
}

/// Where a store's verifier and time come from (the service's confirmed keys and clock).
pub trait Trust: Send + Sync {
    /// The signing key's public half confirmed for `location`; `None`: this device has not
    /// confirmed the destination's key yet (nothing can be authenticated, nothing is deleted).
    fn verifier(&self, location: &str) -> Option<Verifier>;
    fn now(&self) -> DateTime<Utc>;
}

/// A destination whose listing holds only the user's own backups (see the module docs).
pub struct AuthenticatedStore {
    inner: Arc<dyn RemoteStore>,
    trust: Arc<dyn Trust>,
    ignored: Mutex<Vec<Ignored>>,
}

impl AuthenticatedStore {
    pub fn new(inner: Arc<dyn RemoteStore>, trust: Arc<dyn Trust>) -> Self {
        Self {
            inner,
            trust,
            ignored: Mutex::new(Vec::new()),
        }
    }

    /// Splits a listing into what counts and what does not (with why).
    pub fn sort_out(
        listed: Vec<StoredBackup>,
        verifier: Option<&Verifier>,
        now: DateTime<Utc>,
    ) -> (Vec<StoredBackup>, Vec<Ignored>) {
        let mut kept = Vec::with_capacity(listed.len());
        let mut ignored = Vec::new();
        for b in listed {
            let why = match verifier.map(|v| v.check(&b)) {
                Some(Err(why)) => Some(why.to_string()),
                _ if b.created > now + FUTURE_TOLERANCE => Some(format!(
                    "it is dated {}, in the future",
                    b.created.format("%Y-%m-%d %H:%M UTC")
                )),
                _ => None,
            };
            match why {
                Some(reason) => ignored.push(Ignored {
                    file: b.file,
                    id: b.id,
                    reason,
                }),
                None => kept.push(b),
            }
        }
        let (kept, broken) = whole_chains(kept);
        ignored.extend(broken);
        (kept, ignored)
    }
}

/// Keeps the backups that can be restored from what is listed: a one-file backup, a chain's full
/// backup, an increment whose parent is kept (same database and chain, not newer). An increment
/// whose chain is broken (a file deleted by hand, a file that does not count) is left out with
/// why, and never deleted by retention, like any file that does not count.
pub fn whole_chains(listed: Vec<StoredBackup>) -> (Vec<StoredBackup>, Vec<Ignored>) {
    use std::collections::HashMap;
    let mut order: Vec<usize> = (0..listed.len()).collect();
    order.sort_by(|&a, &b| listed[a].created.cmp(&listed[b].created));
    let mut whole: HashMap<(&str, &str), bool> = HashMap::new();
    let mut ok = vec![false; listed.len()];
    for &i in &order {
        let b = &listed[i];
        let good = match &b.link {
            None => true,
            Some(l) => match &l.parent {
                None => l.chain == b.id,
                Some(_) => listed.iter().any(|p| {
                    p.is_parent_of(b)
                        && whole.get(&(p.database.as_str(), p.id.as_str())) == Some(&true)
                }),
            },
        };
        whole.insert((b.database.as_str(), b.id.as_str()), good);
        ok[i] = good;
    }
    let mut kept = Vec::with_capacity(listed.len());
    let mut ignored = Vec::new();
    for (b, good) in listed.into_iter().zip(ok) {
        if good {
            kept.push(b);
        } else {
            let parent = b
                .link
                .as_ref()
                .and_then(|l| l.parent.clone())
                .unwrap_or_else(|| "its chain".into());
            ignored.push(Ignored {
                reason: format!(
                    "it holds only the changes since backup {parent}, which is not here (or does not count), so it cannot be restored"
                ),
                file: b.file,
                id: b.id,
            });
        }
    }
    (kept, ignored)
}

impl RemoteStore for AuthenticatedStore {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list(&self) -> Result<Vec<StoredBackup>, StoreError> {
        let listed = self.inner.list()?;
        let verifier = self.trust.verifier(&self.inner.location());
        let (kept, ignored) = Self::sort_out(listed, verifier.as_ref(), self.trust.now());
        for i in &ignored {
            tracing::warn!(file = %i.file, reason = %i.reason, "ignoring a file at the destination");
        }
        *self.ignored.lock().unwrap_or_else(|p| p.into_inner()) = ignored;
        Ok(kept)
    }

    fn create(&self, file_name: &str) -> Result<Box<dyn UploadSink>, StoreError> {
        self.inner.create(file_name)
    }

    /// As listed; a file that is there but does not count is named with why.
    fn find(&self, id: &str) -> Result<StoredBackup, StoreError> {
        if let Some(b) = crate::store::pick(self.list()?, id) {
            return Ok(b);
        }
        match self
            .ignored()
            .into_iter()
            .find(|i| i.id == id || i.file == id)
        {
            Some(i) => Err(StoreError::Corrupt(format!(
                "{} at {} is not one of your backups: {}",
                i.file,
                self.location(),
                i.reason
            ))),
            None => Err(StoreError::NotFound {
                id: id.to_string(),
                location: self.location(),
            }),
        }
    }

    fn open(&self, backup: &StoredBackup) -> Result<Box<dyn std::io::Read + Send>, StoreError> {
        self.inner.open(backup)
    }

    /// Deletes only a backup whose signature verifies: nothing someone else put there, and
    /// nothing at all before this device has confirmed the destination's key.
    fn delete(&self, backup: &StoredBackup) -> Result<(), StoreError> {
        let verifier = self.trust.verifier(&self.inner.location()).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "not deleting {}: this device has not confirmed the backup key at {} yet",
                backup.file,
                self.inner.location()
            ))
        })?;
        verifier
            .check(backup)
            .map_err(|why| StoreError::Corrupt(format!("not deleting {}: {why}", backup.file)))?;
        self.inner.delete(backup)
    }

    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read_file(name)
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.write_file(name, bytes)
    }

    fn list_side_files(&self, prefix: &str) -> Result<Vec<crate::store::SideFile>, StoreError> {
        self.inner.list_side_files(prefix)
    }

    fn delete_side_file(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete_side_file(name)
    }

    fn create_side_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.create_side_file(name, bytes)
    }

    fn cleanup_incomplete(&self) -> Result<usize, StoreError> {
        self.inner.cleanup_incomplete()
    }

    fn quota(&self) -> Result<Option<crate::store::Quota>, StoreError> {
        self.inner.quota()
    }

    fn ignored(&self) -> Vec<Ignored> {
        self.ignored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BackupSummary;

    fn summary(id: &str, created: &str) -> BackupSummary {
        BackupSummary {
            id: id.into(),
            created: created.parse().unwrap(),
            database: "timetrack".into(),
            documents: 42,
            status: BackupStatus::Complete,
            format_version: 1,
            signature: None,
            link: None,
        }
    }

    fn signed(signer: &Signer, file: &str, s: &BackupSummary) -> StoredBackup {
        let sha = "ab".repeat(32);
        StoredBackup {
            id: s.id.clone(),
            file: file.into(),
            bytes: 1000,
            created: s.created,
            database: s.database.clone(),
            documents: s.documents,
            status: s.status,
            sha256: sha.clone(),
            signature: Some(signer.sign(file, 1000, &sha, s)),
            link: s.link.clone(),
        }
    }

    #[test]
    fn the_signing_key_follows_the_backup_key() {
        let key = BackupKey::generate();
        let again = BackupKey::from_secret_str(secrecy::ExposeSecret::expose_secret(
            &key.to_secret_string(),
        ))
        .unwrap();
        assert_eq!(
            Signer::for_key(&key).verifier(),
            Signer::for_key(&again).verifier()
        );
        assert_ne!(
            Signer::for_key(&key).verifier(),
            Signer::for_key(&BackupKey::generate()).verifier()
        );
        let v = Signer::for_key(&key).verifier();
        assert_eq!(v.to_string().parse::<Verifier>().unwrap(), v);
        assert!("nope".parse::<Verifier>().is_err());
    }

    #[test]
    fn every_listed_fact_is_covered() {
        let signer = Signer::for_key(&BackupKey::generate());
        let v = signer.verifier();
        let s = summary("0000abcd", "2026-11-22T02:00:00Z");
        let good = signed(
            &signer,
            "driveback-timetrack-20261122T020000Z-0000abcd.mdbk",
            &s,
        );
        assert_eq!(v.check(&good), Ok(()));
        assert_eq!(good.signature.as_ref().unwrap().len(), 86);
        type Change = fn(&mut StoredBackup);
        let changes: [(&str, Change); 9] = [
            ("file", |b| b.file = b.file.replace("0000abcd", "0000abce")),
            ("bytes", |b| b.bytes += 1),
            ("sha256", |b| b.sha256 = "cd".repeat(32)),
            ("id", |b| b.id = "0000abce".into()),
            ("database", |b| b.database = "other".into()),
            ("created", |b| b.created += chrono::Duration::days(3)),
            ("documents", |b| b.documents = 7),
            ("status", |b| b.status = BackupStatus::Partial),
            ("signature", |b| {
                let mut s = b.signature.take().unwrap();
                s.replace_range(0..2, if s.starts_with("AA") { "BB" } else { "AA" });
                b.signature = Some(s);
            }),
        ];
        for (what, change) in changes {
            let mut b = good.clone();
            change(&mut b);
            assert!(v.check(&b).is_err(), "a changed {what} still verifies");
        }
        // A chain's links are covered too: an increment cannot be moved to another chain or
        // parent, and a one-file backup cannot be made to look like one of a chain.
        let mut linked_summary = s.clone();
        linked_summary.link = Some(ChainLink {
            chain: "0000aaaa".into(),
            parent: Some("0000bbbb".into()),
        });
        let linked = signed(
            &signer,
            "driveback-timetrack-20261122T020000Z-0000abcd.mdbi",
            &linked_summary,
        );
        assert_eq!(v.check(&linked), Ok(()));
        let link_changes: [(&str, Change); 4] = [
            ("chain", |b| {
                b.link.as_mut().unwrap().chain = "0000cccc".into()
            }),
            ("parent", |b| {
                b.link.as_mut().unwrap().parent = Some("0000cccc".into())
            }),
            ("parent removed", |b| b.link.as_mut().unwrap().parent = None),
            ("link removed", |b| b.link = None),
        ];
        for (what, change) in link_changes {
            let mut b = linked.clone();
            change(&mut b);
            assert!(v.check(&b).is_err(), "a changed {what} still verifies");
        }
        let mut added = good.clone();
        added.link = Some(ChainLink {
            chain: "0000abcd".into(),
            parent: None,
        });
        assert!(v.check(&added).is_err(), "an added link still verifies");
        let mut unsigned = good.clone();
        unsigned.signature = None;
        assert_eq!(
            v.check(&unsigned),
            Err("it is not signed by your backup key")
        );
        // Another key's signature does not count.
        let other = Signer::for_key(&BackupKey::generate());
        assert!(v.check(&signed(&other, &good.file, &s)).is_err());
    }

    #[test]
    fn an_increment_is_listed_only_with_its_whole_chain() {
        let signer = Signer::for_key(&BackupKey::generate());
        let link = |chain: &str, parent: Option<&str>| {
            Some(ChainLink {
                chain: chain.into(),
                parent: parent.map(Into::into),
            })
        };
        let b = |id: &str, day: u32, link: Option<ChainLink>| {
            let mut s = summary(id, &format!("2026-11-{day:02}T02:00:00Z"));
            s.link = link;
            signed(&signer, &format!("{id}.mdbk"), &s)
        };
        // (what is listed, what is kept)
        let cases: Vec<(Vec<StoredBackup>, Vec<&str>)> = vec![
            // A whole chain, with a one-file backup beside it.
            (
                vec![
                    b("0000000a", 1, link("0000000a", None)),
                    b("0000000b", 2, link("0000000a", Some("0000000a"))),
                    b("0000000c", 3, link("0000000a", Some("0000000b"))),
                    b("0000000f", 4, None),
                ],
                vec!["0000000a", "0000000b", "0000000c", "0000000f"],
            ),
            // The middle increment is gone: the ones after it cannot be restored.
            (
                vec![
                    b("0000000a", 1, link("0000000a", None)),
                    b("0000000c", 3, link("0000000a", Some("0000000b"))),
                    b("0000000d", 4, link("0000000a", Some("0000000c"))),
                ],
                vec!["0000000a"],
            ),
            // A parent of another chain, a parent newer than its increment, a full backup
            // that claims another chain.
            (
                vec![
                    b("0000000a", 1, link("0000000a", None)),
                    b("0000000e", 2, link("0000000e", None)),
                    b("0000000b", 3, link("0000000e", Some("0000000a"))),
                    b("0000000c", 1, link("0000000e", Some("0000000e"))),
                    b("0000000d", 4, link("0000000a", None)),
                ],
                vec!["0000000a", "0000000e"],
            ),
        ];
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        for (listed, expected) in cases {
            let (kept, ignored) =
                AuthenticatedStore::sort_out(listed.clone(), Some(&signer.verifier()), now);
            let mut ids: Vec<&str> = kept.iter().map(|b| b.id.as_str()).collect();
            ids.sort();
            assert_eq!(ids, expected);
            assert_eq!(kept.len() + ignored.len(), listed.len());
            for i in &ignored {
                assert!(i.reason.contains("cannot be restored"), "{}", i.reason);
            }
        }
    }

    #[test]
    fn listings_keep_only_signed_backups_not_dated_in_the_future() {
        let signer = Signer::for_key(&BackupKey::generate());
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let old = signed(
            &signer,
            "a.mdbk",
            &summary("0000000a", "2026-11-21T02:00:00Z"),
        );
        let skewed = signed(
            &signer,
            "b.mdbk",
            &summary("0000000b", "2026-11-22T12:05:00Z"),
        );
        let future = signed(
            &signer,
            "c.mdbk",
            &summary("0000000c", "2027-01-01T02:00:00Z"),
        );
        let forged = signed(
            &Signer::for_key(&BackupKey::generate()),
            "d.mdbk",
            &summary("0000000d", "2026-11-22T02:00:00Z"),
        );
        let listed = vec![future.clone(), forged.clone(), skewed.clone(), old.clone()];
        let (kept, ignored) =
            AuthenticatedStore::sort_out(listed.clone(), Some(&signer.verifier()), now);
        assert_eq!(kept, vec![skewed.clone(), old.clone()]);
        assert_eq!(
            ignored,
            vec![
                Ignored {
                    file: "c.mdbk".into(),
                    id: "0000000c".into(),
                    reason: "it is dated 2027-01-01 02:00 UTC, in the future".into()
                },
                Ignored {
                    file: "d.mdbk".into(),
                    id: "0000000d".into(),
                    reason: "its signature does not match your backup key or its contents".into()
                },
            ]
        );
        // Before the key is confirmed here nothing is authenticated, but the future still
        // does not count.
        let (kept, ignored) = AuthenticatedStore::sort_out(listed, None, now);
        assert_eq!(kept, vec![forged, skewed, old]);
        assert_eq!(ignored.len(), 1);
    }

    #[test]
    fn long_database_names_are_cut_where_the_marks_cut_them() {
        let name = "é".repeat(64); // 128 bytes
        let cut = marked_database(&name);
        assert!(cut.len() <= MARKED_DATABASE_BYTES && name.starts_with(cut));
        assert_eq!(cut.chars().count(), MARKED_DATABASE_BYTES / 2);
        assert_eq!(marked_database("timetrack"), "timetrack");
    }
}
