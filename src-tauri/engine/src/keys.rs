//! The backup key of a destination.
//!
//! The first backup to a destination generates an age X25519 key. Its public half is stored in
//! plain text at the destination (`driveback-key.pub`): making a backup needs no secret. The
//! secret half is stored at the destination wrapped with the user's passphrase (age scrypt,
//! ASCII-armored: `driveback-key.age`) and cached in this device's OS keyring. Restoring needs
//! the secret half: from the keyring, else from the passphrase. A new device needs only the
//! passphrase; changing the passphrase rewraps one small file and leaves backups untouched.
//!
//! Unwrapping costs about a second of scrypt work: it never happens on the backup path.

use std::io::{Read, Write};

use age::x25519;
use secrecy::{ExposeSecret, SecretString};

use crate::secrets::{SecretError, SecretStore};
use crate::store::{RemoteStore, StoreError};

/// The public half, in plain text at the destination.
pub const PUBLIC_KEY_FILE: &str = "driveback-key.pub";
/// The secret half wrapped with the passphrase, at the destination.
pub const WRAPPED_KEY_FILE: &str = "driveback-key.age";

/// scrypt work factor (log2 N) of the wrapped key: 2^18 costs 256 MiB and about 1 s to open.
/// Fixed rather than calibrated, because age's calibration picks 2^20 (1 GiB) on fast machines,
/// and the key must open on the user's slowest device.
pub const WORK_FACTOR: u8 = 18;

/// scrypt work factor for wrapping in unit tests.
#[cfg(test)]
const TEST_WORK_FACTOR: u8 = 10;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("wrong passphrase for this destination's backup key")]
    WrongPassphrase,
    #[error(
        "this destination has no backup key yet; run `driveback key init` or make a backup first"
    )]
    NoKey,
    #[error("this destination already has a backup key")]
    AlreadyExists,
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    NoPassphrase(String),
    #[error(
        "the backup key at {location} is not the one this device confirmed ({pinned}); it now \
         says {found}. Someone with access to that place may have replaced it: nothing is backed \
         up there or restored from there until you check (see SECURITY.md)"
    )]
    Changed {
        location: String,
        pinned: String,
        found: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The public key each destination's backups are encrypted to, as this device confirmed it
/// (`key-pins.json` in the config folder). A destination's `driveback-key.pub` is trusted only
/// once it is confirmed: made here, found in this device's keyring, or proved by the passphrase
/// opening the wrapped key. After that, backups use the pinned key and never the file, so a
/// replaced file cannot redirect them.
pub struct KeyPins {
    path: std::path::PathBuf,
    lock: std::sync::Mutex<()>,
}

impl KeyPins {
    pub const FILE: &'static str = "key-pins.json";

    pub fn in_dir(dir: &std::path::Path) -> Self {
        KeyPins {
            path: dir.join(Self::FILE),
            lock: std::sync::Mutex::new(()),
        }
    }

    fn load(&self) -> std::collections::BTreeMap<String, Pin> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, all: &std::collections::BTreeMap<String, Pin>) -> Result<(), KeyError> {
        let bytes = serde_json::to_vec_pretty(all).expect("pins serialise");
        crate::settings::write_private_atomic(&self.path, &bytes).map_err(|e| {
            KeyError::Corrupt(format!(
                "could not record the backup key in {}: {e}",
                self.path.display()
            ))
        })
    }

    /// The confirmed key of `location`, if any.
    pub fn get(&self, location: &str) -> Option<x25519::Recipient> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.load().get(location)?.recipient().parse().ok()
    }

    /// The public half of the signing key that goes with `location`'s confirmed key, once this
    /// device has held the key itself (see [`crate::authenticity`]).
    pub fn verifier(&self, location: &str) -> Option<crate::authenticity::Verifier> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match self.load().get(location)? {
            Pin::Full {
                signer: Some(v), ..
            } => v.parse().ok(),
            _ => None,
        }
    }

    /// Records `recipient` as the confirmed key of `location` (keeping its signing key's public
    /// half when the key stays the same).
    pub fn set(&self, location: &str, recipient: &x25519::Recipient) -> Result<(), KeyError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.load();
        let recipient = recipient.to_string();
        if all.get(location).map(Pin::recipient) == Some(recipient.as_str()) {
            return Ok(());
        }
        all.insert(
            location.to_string(),
            Pin::Full {
                recipient,
                signer: None,
            },
        );
        self.save(&all)
    }

    /// Records `key` as the confirmed key of `location`, with its signing key's public half.
    pub fn set_key(&self, location: &str, key: &BackupKey) -> Result<(), KeyError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.load();
        let pin = Pin::Full {
            recipient: key.recipient().to_string(),
            signer: Some(
                crate::authenticity::Signer::for_key(key)
                    .verifier()
                    .to_string(),
            ),
        };
        if all.get(location) == Some(&pin) {
            return Ok(());
        }
        all.insert(location.to_string(), pin);
        self.save(&all)
    }

    /// Confirms for `to` the key confirmed for `from` (the key moved along with the backups).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), KeyError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.load();
        let Some(pin) = all.get(from).cloned() else {
            return Ok(());
        };
        all.insert(to.to_string(), pin);
        self.save(&all)
    }

    /// Forgets the confirmed key of `location`: the next use confirms the destination's key
    /// again (from the keyring or with the passphrase). Returns whether there was one.
    pub fn forget(&self, location: &str) -> Result<bool, KeyError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = self.load();
        if all.remove(location).is_none() {
            return Ok(false);
        }
        self.save(&all)?;
        Ok(true)
    }
}

/// One destination's confirmed key in `key-pins.json`: the age public key and the public half
/// of the signing key (a bare string is a pin written before backups were signed).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Pin {
    Full {
        recipient: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<String>,
    },
    Bare(String),
}

impl Pin {
    fn recipient(&self) -> &str {
        match self {
            Pin::Full { recipient, .. } | Pin::Bare(recipient) => recipient,
        }
    }
}

/// A destination's backup key (an age X25519 identity).
#[derive(Clone)]
pub struct BackupKey {
    identity: x25519::Identity,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret half.
        write!(f, "BackupKey({})", self.recipient())
    }
}

impl BackupKey {
    pub fn generate() -> Self {
        Self {
            identity: x25519::Identity::generate(),
        }
    }

    /// The public half: what backups are encrypted to.
    pub fn recipient(&self) -> x25519::Recipient {
        self.identity.to_public()
    }

    pub fn identity(&self) -> &x25519::Identity {
        &self.identity
    }

    /// `AGE-SECRET-KEY-1...`, as `age -i` reads it.
    pub fn to_secret_string(&self) -> SecretString {
        self.identity.to_string()
    }

    pub fn from_secret_str(s: &str) -> Result<Self, KeyError> {
        s.trim()
            .parse::<x25519::Identity>()
            .map(|identity| Self { identity })
            .map_err(|e| KeyError::Corrupt(format!("not an age secret key ({e})")))
    }

    /// The secret half encrypted with a passphrase (age scrypt, ASCII-armored). The plaintext
    /// is an age identity file, so `age -d driveback-key.age > key.txt` gives a key file that
    /// `age -d -i key.txt` accepts.
    pub fn wrap(&self, passphrase: &SecretString) -> Result<Vec<u8>, KeyError> {
        if passphrase.expose_secret().is_empty() {
            return Err(KeyError::NoPassphrase(
                "an empty passphrase cannot protect the backup key".into(),
            ));
        }
        let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
        recipient.set_work_factor(WORK_FACTOR);
        #[cfg(test)]
        recipient.set_work_factor(TEST_WORK_FACTOR);

        let plaintext = SecretString::from(format!(
            "# Driveback backup key\n# public key: {}\n{}\n",
            self.recipient(),
            self.identity.to_string().expose_secret()
        ));
        let failed = |e: std::io::Error| KeyError::Corrupt(format!("could not wrap the key: {e}"));
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .map_err(|e| KeyError::Corrupt(format!("could not wrap the key: {e}")))?;
        let mut out = Vec::new();
        let armor =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .map_err(failed)?;
        let mut w = encryptor.wrap_output(armor).map_err(failed)?;
        w.write_all(plaintext.expose_secret().as_bytes())
            .map_err(failed)?;
        w.finish()
            .and_then(|armor| armor.finish())
            .map_err(failed)?;
        Ok(out)
    }

    /// Opens a wrapped key with the passphrase.
    pub fn unwrap(wrapped: &[u8], passphrase: &SecretString) -> Result<Self, KeyError> {
        use age::DecryptError as D;
        let not_a_key = |why: String| {
            KeyError::Corrupt(format!(
                "{WRAPPED_KEY_FILE} is not a passphrase-protected backup key ({why})"
            ))
        };
        let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(wrapped))
            .map_err(|e| not_a_key(e.to_string()))?;
        if !decryptor.is_scrypt() {
            return Err(not_a_key("it is not passphrase-encrypted".into()));
        }
        let mut identity = age::scrypt::Identity::new(passphrase.clone());
        // A tampered key file could ask for any work factor (each step doubles time and memory):
        // allow one step above what Driveback writes.
        identity.set_max_work_factor(WORK_FACTOR + 1);
        let mut reader = decryptor
            .decrypt(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| match e {
                D::DecryptionFailed | D::NoMatchingKeys => KeyError::WrongPassphrase,
                D::ExcessiveWork { .. } => {
                    not_a_key("it demands far more work to open than expected".into())
                }
                other => not_a_key(other.to_string()),
            })?;
        let mut plaintext = Vec::new();
        let read = reader.read_to_end(&mut plaintext);
        let text = SecretString::from(String::from_utf8_lossy(&plaintext).into_owned());
        secrecy::zeroize::Zeroize::zeroize(&mut plaintext);
        read.map_err(|e| not_a_key(e.to_string()))?;

        let mut keys = text
            .expose_secret()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        match (keys.next(), keys.next()) {
            (Some(line), None) => Self::from_secret_str(line),
            _ => Err(not_a_key("it does not hold exactly one key".into())),
        }
    }
}

/// Fewer characters than this make a weak passphrase.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// Why `p` is too weak to protect backups that may sit on a cloud drive for years (anyone who
/// gets a file can try passphrases against it offline), or `None`. The app refuses a weak
/// passphrase; the CLI warns.
pub fn passphrase_weakness(p: &str) -> Option<String> {
    let chars: Vec<char> = p.chars().collect();
    if chars.len() < MIN_PASSPHRASE_CHARS {
        return Some(format!("use at least {MIN_PASSPHRASE_CHARS} characters"));
    }
    if !chars.iter().any(|c| c.is_alphabetic()) {
        return Some("use at least one letter in the passphrase".into());
    }
    if chars.iter().all(|c| *c == chars[0]) {
        return Some("use more than one repeated character".into());
    }
    // Common passwords, keyboard walks, names and dates are among the first guesses anyone
    // tries: refuse what would fall to fewer than about a million guesses.
    let estimate = zxcvbn::zxcvbn(p, &[]);
    if u8::from(estimate.score()) < MIN_PASSPHRASE_SCORE {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .filter(|w| !w.is_empty())
            .map(|w| format!(" ({})", w.trim_end_matches('.').to_lowercase()))
            .unwrap_or_default();
        return Some(format!(
            "this passphrase is quick to guess{hint}: use a few unrelated words"
        ));
    }
    None
}

/// zxcvbn's score (0-4) a new passphrase needs: 2 means more than about 10^6 guesses.
pub const MIN_PASSPHRASE_SCORE: u8 = 2;

/// Why a passphrase is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassphrasePurpose {
    /// Setting a passphrase (the CLI asks twice).
    New,
    /// Opening the backup key.
    Unlock,
    /// Confirming the current passphrase before changing it.
    Current,
}

/// Where passphrases come from (`DRIVEBACK_PASSPHRASE` or a prompt in the CLI; a dialog in the
/// app).
pub trait PassphraseSource {
    fn passphrase(&self, purpose: PassphrasePurpose) -> Result<SecretString, KeyError>;
}

/// The same passphrase for every purpose (e.g. from `DRIVEBACK_PASSPHRASE`).
pub struct FixedPassphrase(pub SecretString);

impl PassphraseSource for FixedPassphrase {
    fn passphrase(&self, _purpose: PassphrasePurpose) -> Result<SecretString, KeyError> {
        Ok(self.0.clone())
    }
}

/// Name of the keyring entry caching the backup key with this public half.
pub fn keyring_entry_name(recipient: &x25519::Recipient) -> String {
    keyring_entry_for(&recipient.to_string())
}

/// The backup key whose public half is `recipient`, when `secrets` holds it (an entry holding
/// another key is not it).
pub fn keyring_key(secrets: &dyn SecretStore, recipient: &x25519::Recipient) -> Option<BackupKey> {
    let secret = secrets.get(&keyring_entry_name(recipient)).ok()??;
    BackupKey::from_secret_str(secret.expose_secret())
        .ok()
        .filter(|k| k.recipient().to_string() == recipient.to_string())
}

/// [`keyring_entry_name`] of a public key given as text (`age1...`).
pub fn keyring_entry_for(public_key: &str) -> String {
    format!("backup-key:{public_key}")
}

/// A new backup key was made for a destination.
#[derive(Clone, Debug)]
pub struct KeyInit {
    /// Its public half (`age1...`).
    pub recipient: String,
    /// Things to tell the user (e.g. the key could not be cached in the keyring).
    pub notices: Vec<String>,
}

/// The backup key of one destination, with where to cache it and whom to ask for passphrases.
pub struct KeyRing<'a> {
    pub store: &'a dyn RemoteStore,
    /// The OS keyring; `None` when there is none (the passphrase is asked every time).
    pub secrets: Option<&'a dyn SecretStore>,
    pub passphrases: &'a dyn PassphraseSource,
    /// This device's confirmed keys; without them the destination's public key file is taken
    /// as it is (tests of the key files themselves).
    pub pins: Option<&'a KeyPins>,
}

impl<'a> KeyRing<'a> {
    /// Checks the destination's key against this device's confirmed keys (see [`KeyPins`]).
    pub fn with_pins(mut self, pins: &'a KeyPins) -> Self {
        self.pins = Some(pins);
        self
    }

    pub fn new(
        store: &'a dyn RemoteStore,
        secrets: Option<&'a dyn SecretStore>,
        passphrases: &'a dyn PassphraseSource,
    ) -> Self {
        Self {
            store,
            secrets,
            passphrases,
            pins: None,
        }
    }
}

impl KeyRing<'_> {
    fn pin(&self, key: &BackupKey) -> Result<(), KeyError> {
        match self.pins {
            Some(p) => p.set_key(&self.store.location(), key),
            None => Ok(()),
        }
    }

    /// The key that signs backups to `recipient`: from the keyring, else the backup key opened
    /// with the passphrase (see [`crate::authenticity`]).
    pub fn signer(
        &self,
        recipient: &x25519::Recipient,
    ) -> Result<crate::authenticity::Signer, KeyError> {
        if let Some(key) = self.in_keyring(recipient) {
            self.pin(&key)?;
            return Ok(crate::authenticity::Signer::for_key(&key));
        }
        let (key, notices) = self.identity()?;
        for n in notices {
            tracing::warn!("{n}");
        }
        if key.recipient().to_string() != recipient.to_string() {
            return Err(KeyError::Corrupt(format!(
                "the backup key at {} is not the one backups go to",
                self.store.location()
            )));
        }
        Ok(crate::authenticity::Signer::for_key(&key))
    }

    /// The key to back up to: the confirmed one when this device has one for the destination
    /// (refused with [`KeyError::Changed`] when the destination's file now names another); else
    /// the destination's public key, once confirmed by this device's keyring or by the
    /// passphrase. `None`: the destination has no key.
    pub fn recipient(&self) -> Result<Option<x25519::Recipient>, KeyError> {
        let Some(pins) = self.pins else {
            return self.published();
        };
        let found = self.published()?;
        if let Some(pinned) = pins.get(&self.store.location()) {
            return match found {
                Some(found) if found.to_string() != pinned.to_string() => Err(KeyError::Changed {
                    location: self.store.location(),
                    pinned: pinned.to_string(),
                    found: found.to_string(),
                }),
                _ => Ok(Some(pinned)),
            };
        }
        let Some(found) = found else {
            return Ok(None);
        };
        if let Some(key) = self.in_keyring(&found) {
            self.pin(&key)?;
            return Ok(Some(found));
        }
        // New to this device: the passphrase proves the file belongs with the wrapped key.
        let (key, notices) = self.identity()?;
        for n in notices {
            tracing::warn!("{n}");
        }
        Ok(Some(key.recipient()))
    }

    /// The key whose public half is `recipient`, when this device's keyring holds it.
    fn in_keyring(&self, recipient: &x25519::Recipient) -> Option<BackupKey> {
        keyring_key(self.secrets?, recipient)
    }

    /// The destination's public key file, as it is.
    pub fn published(&self) -> Result<Option<x25519::Recipient>, KeyError> {
        let Some(bytes) = self.store.read_file(PUBLIC_KEY_FILE)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        line.and_then(|l| l.parse::<x25519::Recipient>().ok())
            .map(Some)
            .ok_or_else(|| {
                KeyError::Corrupt(format!(
                    "{PUBLIC_KEY_FILE} at {} does not hold an age public key",
                    self.store.location()
                ))
            })
    }

    /// Makes a backup key for a destination that has none: asks for a new passphrase, writes
    /// the wrapped and the public half, caches the key in the keyring.
    pub fn init(&self) -> Result<KeyInit, KeyError> {
        if self.store.read_file(PUBLIC_KEY_FILE)?.is_some()
            || self.store.read_file(WRAPPED_KEY_FILE)?.is_some()
        {
            return Err(KeyError::AlreadyExists);
        }
        let passphrase = self.passphrases.passphrase(PassphrasePurpose::New)?;
        let key = BackupKey::generate();
        let wrapped = key.wrap(&passphrase)?;
        // The wrapped half first: the public half is what makes backups use the key, and no
        // backup may be made to a key that cannot be recovered with the passphrase.
        self.store.write_file(WRAPPED_KEY_FILE, &wrapped)?;
        crate::crash::crash_point("key.wrapped_written");
        self.store
            .write_file(PUBLIC_KEY_FILE, format!("{}\n", key.recipient()).as_bytes())?;
        self.pin(&key)?;
        let notices = self.cache(&key, None).into_iter().collect();
        Ok(KeyInit {
            recipient: key.recipient().to_string(),
            notices,
        })
    }

    /// The public key to back up to, making the key first if the destination has none.
    pub fn recipient_or_init(&self) -> Result<(x25519::Recipient, Option<KeyInit>), KeyError> {
        if let Some(recipient) = self.recipient()? {
            return Ok((recipient, None));
        }
        if let Some(pinned) = self.pins.and_then(|p| p.get(&self.store.location())) {
            return Ok((pinned, None));
        }
        if self.store.read_file(WRAPPED_KEY_FILE)?.is_some() {
            // A key exists but its public half is missing (an interrupted `init`, or a deleted
            // file). Backups may already depend on that key: recover the public half with the
            // passphrase rather than replacing the key.
            let (key, notices) = self.identity()?;
            for notice in notices {
                tracing::warn!("{notice}");
            }
            self.store
                .write_file(PUBLIC_KEY_FILE, format!("{}\n", key.recipient()).as_bytes())?;
            self.pin(&key)?;
            return Ok((key.recipient(), None));
        }
        let init = self.init()?;
        let recipient = init
            .recipient
            .parse::<x25519::Recipient>()
            .expect("a generated recipient parses");
        Ok((recipient, Some(init)))
    }

    /// The backup key, to restore: from the keyring if cached there, else opened with the
    /// passphrase and then cached. Notices tell the user about keyring trouble.
    pub fn identity(&self) -> Result<(BackupKey, Vec<String>), KeyError> {
        let pinned = self.pins.and_then(|p| p.get(&self.store.location()));
        let recipient = match (pinned, self.published()?) {
            (Some(p), Some(found)) if p.to_string() != found.to_string() => {
                return Err(KeyError::Changed {
                    location: self.store.location(),
                    pinned: p.to_string(),
                    found: found.to_string(),
                })
            }
            (Some(p), _) => Some(p),
            (None, found) => found,
        };
        let mut keyring_problem = None;
        if let (Some(recipient), Some(secrets)) = (&recipient, self.secrets) {
            match secrets.get(&keyring_entry_name(recipient)) {
                Ok(Some(secret)) => match BackupKey::from_secret_str(secret.expose_secret()) {
                    Ok(key) if key.recipient().to_string() == recipient.to_string() => {
                        self.pin(&key)?;
                        return Ok((key, Vec::new()));
                    }
                    _ => tracing::warn!(
                        "ignoring a keyring entry that does not hold this destination's key"
                    ),
                },
                Ok(None) => {}
                Err(e) => keyring_problem = Some(e.to_string()),
            }
        }

        let Some(wrapped) = self.store.read_file(WRAPPED_KEY_FILE)? else {
            return Err(match recipient {
                None => KeyError::NoKey,
                Some(_) => KeyError::Corrupt(format!(
                    "{WRAPPED_KEY_FILE} is missing at {}: the backup key can only come from the \
                     OS keyring of a device that has used it",
                    self.store.location()
                )),
            });
        };
        let passphrase = self.passphrases.passphrase(PassphrasePurpose::Unlock)?;
        let key = BackupKey::unwrap(&wrapped, &passphrase)?;
        self.check_matches(&key, recipient.as_ref())?;
        self.pin(&key)?;
        let notices = self.cache(&key, keyring_problem).into_iter().collect();
        Ok((key, notices))
    }

    /// Rewraps the backup key with a new passphrase (after confirming the current one). The key
    /// itself, and so every backup, stays the same.
    pub fn change_passphrase(&self) -> Result<(), KeyError> {
        let Some(wrapped) = self.store.read_file(WRAPPED_KEY_FILE)? else {
            return Err(KeyError::NoKey);
        };
        let current = self.passphrases.passphrase(PassphrasePurpose::Current)?;
        let key = BackupKey::unwrap(&wrapped, &current)?;
        let expected = match self.pins.and_then(|p| p.get(&self.store.location())) {
            Some(p) => Some(p),
            None => self.published()?,
        };
        self.check_matches(&key, expected.as_ref())?;
        let new = self.passphrases.passphrase(PassphrasePurpose::New)?;
        let rewrapped = key.wrap(&new)?;
        self.store.write_file(WRAPPED_KEY_FILE, &rewrapped)?;
        Ok(())
    }

    fn check_matches(
        &self,
        key: &BackupKey,
        recipient: Option<&x25519::Recipient>,
    ) -> Result<(), KeyError> {
        match recipient {
            Some(r) if r.to_string() != key.recipient().to_string() => {
                Err(KeyError::Corrupt(format!(
                    "{WRAPPED_KEY_FILE} and {PUBLIC_KEY_FILE} at {} hold different keys",
                    self.store.location()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Saves the key in the keyring; returns a notice for the user if that was not possible.
    fn cache(&self, key: &BackupKey, known_problem: Option<String>) -> Option<String> {
        let problem = match (self.secrets, known_problem) {
            (_, Some(problem)) => problem,
            (None, None) => "no OS keyring is in use".to_string(),
            (Some(secrets), None) => match secrets.set(
                &keyring_entry_name(&key.recipient()),
                &key.to_secret_string(),
            ) {
                Ok(()) => return None,
                Err(e) => e.to_string(),
            },
        };
        Some(format!(
            "could not save the backup key to the OS keyring ({problem}); you will be asked for \
             the passphrase again"
        ))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn weak_passphrases_are_named() {
        for (p, weak) in [
            ("short", true),
            ("12345678901", true),
            ("aaaaaaaaaaaa", true),
            ("        ", true),
            ("correct horse battery staple", false),
            ("pässwörter-2026", false),
            ("password", true),
            ("Password1", true),
            ("qwertyuiop", true),
            ("iloveyou2", true),
        ] {
            assert_eq!(passphrase_weakness(p).is_some(), weak, "{p:?}");
        }
        assert_eq!(
            passphrase_weakness("short").unwrap(),
            "use at least 8 characters"
        );
    }

    #[test]
    fn a_key_file_demanding_excessive_work_is_refused_without_doing_it() {
        use std::io::Read;
        let key = BackupKey::generate();
        let pass = SecretString::from("correct horse battery staple".to_string());
        let wrapped = key.wrap(&pass).unwrap();
        let mut binary = Vec::new();
        age::armor::ArmoredReader::new(&wrapped[..])
            .read_to_end(&mut binary)
            .unwrap();
        // The scrypt stanza names its work factor in plain text: ask for 2^30.
        let text = String::from_utf8_lossy(&binary).into_owned();
        let stanza = text.lines().find(|l| l.starts_with("-> scrypt ")).unwrap();
        let greedy = format!("{} 30", stanza.rsplit_once(' ').unwrap().0);
        let tampered = text.replacen(stanza, &greedy, 1).into_bytes();
        let started = std::time::Instant::now();
        let e = BackupKey::unwrap(&tampered, &pass).err().unwrap();
        assert!(e.to_string().contains("far more work"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    use super::*;
    use crate::container::{read_manifest, BackupWriter};
    use crate::manifest::tests::sample_manifest;
    use crate::secrets::MemorySecretStore;
    use crate::store::folder::FolderStore;
    use std::sync::Mutex;

    /// Answers per purpose, and remembers what was asked.
    struct Answers {
        new: &'static str,
        unlock: &'static str,
        current: &'static str,
        asked: Mutex<Vec<PassphrasePurpose>>,
    }

    impl Answers {
        fn new(new: &'static str, unlock: &'static str, current: &'static str) -> Self {
            Self {
                new,
                unlock,
                current,
                asked: Mutex::new(Vec::new()),
            }
        }

        fn asked(&self) -> Vec<PassphrasePurpose> {
            self.asked.lock().unwrap().clone()
        }
    }

    impl PassphraseSource for Answers {
        fn passphrase(&self, purpose: PassphrasePurpose) -> Result<SecretString, KeyError> {
            self.asked.lock().unwrap().push(purpose);
            let answer = match purpose {
                PassphrasePurpose::New => self.new,
                PassphrasePurpose::Unlock => self.unlock,
                PassphrasePurpose::Current => self.current,
            };
            if answer.is_empty() {
                return Err(KeyError::NoPassphrase(
                    "no passphrase: set DRIVEBACK_PASSPHRASE or run in a terminal".into(),
                ));
            }
            Ok(SecretString::from(answer))
        }
    }

    fn pw(s: &str) -> SecretString {
        SecretString::from(s)
    }

    #[test]
    fn wrap_and_unwrap() {
        let key = BackupKey::generate();
        let wrapped = key.wrap(&pw("correct horse")).unwrap();
        assert!(wrapped.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        let text = String::from_utf8(wrapped.clone()).unwrap();
        assert!(!text.contains("AGE-SECRET-KEY"));
        let back = BackupKey::unwrap(&wrapped, &pw("correct horse")).unwrap();
        assert_eq!(back.recipient().to_string(), key.recipient().to_string());
        assert_eq!(
            back.to_secret_string().expose_secret(),
            key.to_secret_string().expose_secret()
        );
    }

    #[test]
    fn a_wrong_passphrase_is_named_as_such() {
        let wrapped = BackupKey::generate().wrap(&pw("right")).unwrap();
        let err = BackupKey::unwrap(&wrapped, &pw("wrong")).unwrap_err();
        assert!(matches!(err, KeyError::WrongPassphrase), "{err:?}");
        assert_eq!(
            err.to_string(),
            "wrong passphrase for this destination's backup key"
        );
    }

    #[test]
    fn damaged_or_foreign_wrapped_keys_are_corrupt() {
        let key = BackupKey::generate();
        assert!(matches!(
            BackupKey::unwrap(b"hello", &pw("x")),
            Err(KeyError::Corrupt(_))
        ));
        // Encrypted to a key rather than a passphrase.
        let other = age::encrypt(&key.recipient(), b"AGE-SECRET-KEY-1").unwrap();
        assert!(matches!(
            BackupKey::unwrap(&other, &pw("x")),
            Err(KeyError::Corrupt(_))
        ));
        // Passphrase-encrypted, but not a key.
        let mut r = age::scrypt::Recipient::new(pw("x"));
        r.set_work_factor(TEST_WORK_FACTOR);
        let not_a_key = age::encrypt(&r, b"just some text\n").unwrap();
        assert!(matches!(
            BackupKey::unwrap(&not_a_key, &pw("x")),
            Err(KeyError::Corrupt(_))
        ));
        assert!(matches!(key.wrap(&pw("")), Err(KeyError::NoPassphrase(_))));
    }

    #[test]
    fn secret_strings_round_trip() {
        let key = BackupKey::generate();
        let s = key.to_secret_string();
        assert!(s.expose_secret().starts_with("AGE-SECRET-KEY-1"));
        let back = BackupKey::from_secret_str(&format!("  {}\n", s.expose_secret())).unwrap();
        assert_eq!(back.recipient().to_string(), key.recipient().to_string());
        assert!(matches!(
            BackupKey::from_secret_str("AGE-SECRET-KEY-1NOPE"),
            Err(KeyError::Corrupt(_))
        ));
        assert!(!format!("{key:?}").contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn init_writes_both_halves_and_caches_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let secrets = MemorySecretStore::new();
        let answers = Answers::new("new pass", "", "");
        let ring = KeyRing::new(&store, Some(&secrets), &answers);

        assert!(ring.recipient().unwrap().is_none());
        let init = ring.init().unwrap();
        assert!(init.notices.is_empty(), "{:?}", init.notices);
        assert!(init.recipient.starts_with("age1"));
        assert_eq!(answers.asked(), [PassphrasePurpose::New]);

        let pub_file = store.read_file(PUBLIC_KEY_FILE).unwrap().unwrap();
        assert_eq!(pub_file, format!("{}\n", init.recipient).into_bytes());
        let wrapped = store.read_file(WRAPPED_KEY_FILE).unwrap().unwrap();
        let key = BackupKey::unwrap(&wrapped, &pw("new pass")).unwrap();
        assert_eq!(key.recipient().to_string(), init.recipient);
        assert_eq!(
            ring.recipient().unwrap().unwrap().to_string(),
            init.recipient
        );
        let cached = secrets
            .get(&format!("backup-key:{}", init.recipient))
            .unwrap()
            .unwrap();
        assert_eq!(
            cached.expose_secret(),
            key.to_secret_string().expose_secret()
        );

        assert!(matches!(ring.init(), Err(KeyError::AlreadyExists)));
    }

    #[test]
    fn identity_comes_from_the_keyring_without_a_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let secrets = MemorySecretStore::new();
        let answers = Answers::new("pass", "", "");
        let ring = KeyRing::new(&store, Some(&secrets), &answers);
        let init = ring.init().unwrap();

        let (key, notices) = ring.identity().unwrap();
        assert_eq!(key.recipient().to_string(), init.recipient);
        assert!(notices.is_empty());
        // Only the passphrase for init was asked for.
        assert_eq!(answers.asked(), [PassphrasePurpose::New]);
    }

    #[test]
    fn a_new_device_needs_only_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let first_device = MemorySecretStore::new();
        let answers = Answers::new("pass", "", "");
        let init = KeyRing::new(&store, Some(&first_device), &answers)
            .init()
            .unwrap();

        let second_device = MemorySecretStore::new();
        let answers = Answers::new("", "pass", "");
        let ring = KeyRing::new(&store, Some(&second_device), &answers);
        let (key, notices) = ring.identity().unwrap();
        assert_eq!(key.recipient().to_string(), init.recipient);
        assert!(notices.is_empty());
        assert_eq!(answers.asked(), [PassphrasePurpose::Unlock]);
        // Now cached: no second question.
        ring.identity().unwrap();
        assert_eq!(answers.asked(), [PassphrasePurpose::Unlock]);

        let wrong = Answers::new("", "not the pass", "");
        let fresh = MemorySecretStore::new();
        let err = KeyRing::new(&store, Some(&fresh), &wrong)
            .identity()
            .unwrap_err();
        assert!(matches!(err, KeyError::WrongPassphrase));
    }

    #[test]
    fn without_a_keyring_identity_works_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let answers = Answers::new("pass", "pass", "");
        let ring = KeyRing::new(&store, None, &answers);
        let init = ring.init().unwrap();
        assert_eq!(init.notices.len(), 1);

        let (key, notices) = ring.identity().unwrap();
        assert_eq!(key.recipient().to_string(), init.recipient);
        assert_eq!(
            notices,
            [
                "could not save the backup key to the OS keyring (no OS keyring is in use); \
              you will be asked for the passphrase again"
            ]
        );
        ring.identity().unwrap();
        assert_eq!(
            answers.asked(),
            [
                PassphrasePurpose::New,
                PassphrasePurpose::Unlock,
                PassphrasePurpose::Unlock
            ]
        );
    }

    #[test]
    fn a_keyring_entry_for_another_key_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let answers = Answers::new("pass", "pass", "");
        let init = KeyRing::new(&store, None, &answers).init().unwrap();
        let secrets = MemorySecretStore::new();
        secrets
            .set(
                &format!("backup-key:{}", init.recipient),
                &BackupKey::generate().to_secret_string(),
            )
            .unwrap();
        let (key, _) = KeyRing::new(&store, Some(&secrets), &answers)
            .identity()
            .unwrap();
        assert_eq!(key.recipient().to_string(), init.recipient);
    }

    #[test]
    fn changing_the_passphrase_keeps_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let answers = Answers::new("old", "", "");
        let init = KeyRing::new(&store, None, &answers).init().unwrap();

        let wrong = Answers::new("new", "", "not old");
        assert!(matches!(
            KeyRing::new(&store, None, &wrong).change_passphrase(),
            Err(KeyError::WrongPassphrase)
        ));

        let change = Answers::new("new", "", "old");
        KeyRing::new(&store, None, &change)
            .change_passphrase()
            .unwrap();
        assert_eq!(
            change.asked(),
            [PassphrasePurpose::Current, PassphrasePurpose::New]
        );
        let new_answers = Answers::new("", "new", "");
        let ring = KeyRing::new(&store, None, &new_answers);
        assert_eq!(
            ring.recipient().unwrap().unwrap().to_string(),
            init.recipient
        );
        let (key, _) = ring.identity().unwrap();
        assert_eq!(key.recipient().to_string(), init.recipient);
        let old_answers = Answers::new("", "old", "");
        let old = KeyRing::new(&store, None, &old_answers);
        assert!(matches!(old.identity(), Err(KeyError::WrongPassphrase)));
    }

    #[test]
    fn a_destination_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let answers = Answers::new("", "pass", "pass");
        let ring = KeyRing::new(&store, None, &answers);
        let err = ring.identity().unwrap_err();
        assert!(matches!(err, KeyError::NoKey));
        assert_eq!(
            err.to_string(),
            "this destination has no backup key yet; run `driveback key init` or make a backup first"
        );
        assert!(matches!(ring.change_passphrase(), Err(KeyError::NoKey)));
        // Making a key needs a new passphrase; without one nothing is written.
        assert!(matches!(ring.init(), Err(KeyError::NoPassphrase(_))));
        assert_eq!(store.read_file(PUBLIC_KEY_FILE).unwrap(), None);
        assert_eq!(store.read_file(WRAPPED_KEY_FILE).unwrap(), None);
    }

    #[test]
    fn recipient_or_init_makes_the_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let secrets = MemorySecretStore::new();
        let answers = Answers::new("pass", "", "");
        let ring = KeyRing::new(&store, Some(&secrets), &answers);
        let (first, init) = ring.recipient_or_init().unwrap();
        assert_eq!(init.unwrap().recipient, first.to_string());
        let (second, init) = ring.recipient_or_init().unwrap();
        assert!(init.is_none());
        assert_eq!(second.to_string(), first.to_string());
        assert_eq!(answers.asked(), [PassphrasePurpose::New]);
    }

    #[test]
    fn a_missing_public_half_is_recovered_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let answers = Answers::new("pass", "pass", "");
        let ring = KeyRing::new(&store, None, &answers);
        let init = ring.init().unwrap();
        std::fs::remove_file(dir.path().join(PUBLIC_KEY_FILE)).unwrap();

        let (recipient, made) = ring.recipient_or_init().unwrap();
        assert!(made.is_none());
        assert_eq!(recipient.to_string(), init.recipient);
        assert_eq!(
            ring.recipient().unwrap().unwrap().to_string(),
            init.recipient
        );
    }

    #[test]
    fn mismatched_halves_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let answers = Answers::new("pass", "pass", "");
        let ring = KeyRing::new(&store, None, &answers);
        ring.init().unwrap();
        store
            .write_file(
                PUBLIC_KEY_FILE,
                format!("{}\n", BackupKey::generate().recipient()).as_bytes(),
            )
            .unwrap();
        assert!(matches!(ring.identity(), Err(KeyError::Corrupt(_))));
        store.write_file(PUBLIC_KEY_FILE, b"garbage\n").unwrap();
        assert!(matches!(ring.recipient(), Err(KeyError::Corrupt(_))));
    }

    #[test]
    fn a_backup_made_with_the_public_half_restores_with_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let answers = Answers::new("pass", "pass", "");
        let (recipient, _) = KeyRing::new(&store, None, &answers)
            .recipient_or_init()
            .unwrap();
        let mut w = BackupWriter::new(Vec::new(), &recipient, 3).unwrap();
        w.write_all(b"archive bytes").unwrap();
        let file = w.finish(&sample_manifest()).unwrap();

        // Another device: only the destination and the passphrase.
        let secrets = MemorySecretStore::new();
        let (key, _) = KeyRing::new(&store, Some(&secrets), &answers)
            .identity()
            .unwrap();
        assert_eq!(
            read_manifest(&file[..], key.identity()).unwrap(),
            sample_manifest()
        );
    }
}
