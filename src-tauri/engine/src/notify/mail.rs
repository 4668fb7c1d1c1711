//! Sending email over SMTP with `lettre` (blocking transport: call it from a blocking thread).
//!
//! The connection is always encrypted except to a server on this computer: STARTTLS (required,
//! never opportunistic) or TLS from the first byte. Certificates are always verified against the
//! public roots, plus the settings' `smtp.ca_file` when given. The password comes from
//! `DRIVEBACK_SMTP_PASSWORD` or the keyring and only ever travels inside a [`SecretString`].

use crate::error::one_line;
use std::path::Path;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use secrecy::{ExposeSecret, SecretString};

use super::templates::Mail;
use crate::secrets::{self, SecretStore};
use crate::settings::{is_local_host, SmtpSecurity, SmtpSettings};

/// Environment variable that overrides the keyring's SMTP password.
pub const PASSWORD_ENV: &str = "DRIVEBACK_SMTP_PASSWORD";

/// How long one SMTP conversation may stall.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("email is not set up: {0}")]
    NotConfigured(String),
    #[error("{key}: '{value}' is not an email address")]
    BadAddress { key: &'static str, value: String },
    #[error("the SMTP server refused the login for {user} (check the password / app password)")]
    Login { user: String },
    #[error("could not connect to smtp {host}:{port}: {detail}")]
    Connect {
        host: String,
        port: u16,
        detail: String,
    },
    #[error("the secure connection to smtp {host}:{port} failed: {detail}")]
    Tls {
        host: String,
        port: u16,
        detail: String,
    },
    /// A 4xx answer: try again later.
    #[error("the SMTP server {host} asked to try again later: {detail}")]
    Transient { host: String, detail: String },
    #[error("the SMTP server {host} refused the message: {detail}")]
    Rejected { host: String, detail: String },
    #[error("could not read the certificate file {path} (smtp.ca_file): {detail}")]
    CaFile { path: String, detail: String },
    #[error("could not build the email: {0}")]
    Build(String),
    #[error("could not read the SMTP password: {0}")]
    Secret(String),
}

impl MailError {
    /// A short stable code for the UI.
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            MailError::NotConfigured(_) => ErrorCode::EmailNotConfigured,
            MailError::BadAddress { .. } | MailError::CaFile { .. } => ErrorCode::BadInput,
            MailError::Login { .. } => ErrorCode::EmailLoginFailed,
            MailError::Connect { .. } | MailError::Tls { .. } => ErrorCode::EmailUnreachable,
            MailError::Transient { .. } | MailError::Rejected { .. } => ErrorCode::EmailRejected,
            MailError::Build(_) => ErrorCode::Internal,
            MailError::Secret(_) => ErrorCode::KeyError,
        }
    }

    /// Worth another try later: a 4xx answer, or the server not answering.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MailError::Transient { .. } | MailError::Connect { .. }
        )
    }
}

/// The SMTP password: `DRIVEBACK_SMTP_PASSWORD`, else the keyring entry
/// [`secrets::SMTP_PASSWORD`]; `None` when neither has one.
pub fn smtp_password(store: Option<&dyn SecretStore>) -> Result<Option<SecretString>, MailError> {
    if let Some(p) = crate::envsecrets::var(PASSWORD_ENV) {
        if !p.is_empty() {
            return Ok(Some(SecretString::from(p)));
        }
    }
    match store {
        Some(s) => s
            .get(secrets::SMTP_PASSWORD)
            .map_err(|e| MailError::Secret(e.to_string())),
        None => Ok(None),
    }
}

fn mailbox(key: &'static str, value: &str) -> Result<Mailbox, MailError> {
    let bad = || MailError::BadAddress {
        key,
        value: value.to_string(),
    };
    let addr: lettre::Address = value.trim().parse().map_err(|_| bad())?;
    Ok(Mailbox::new(Some("Driveback".into()), addr))
}

/// The SMTP seam: sends one email with the settings' server, trying again after `retry` while
/// the error is transient. Returns where it went (server, recipients). [`Smtp`] is the product's.
pub trait MailTransport: Send + Sync {
    fn send(
        &self,
        smtp: &SmtpSettings,
        password: Option<SecretString>,
        out: &Outgoing,
        retry: &[Duration],
    ) -> Result<(String, Vec<String>), MailError>;
}

/// Real SMTP (lettre, rustls; certificates always verified).
pub struct Smtp;

impl MailTransport for Smtp {
    fn send(
        &self,
        smtp: &SmtpSettings,
        password: Option<SecretString>,
        out: &Outgoing,
        retry: &[Duration],
    ) -> Result<(String, Vec<String>), MailError> {
        let mailer = Mailer::new(smtp, password)?;
        mailer.send_with_retry(out, retry)?;
        Ok((mailer.server(), mailer.recipients()))
    }
}

/// Sends email through one SMTP server.
pub struct Mailer {
    transport: SmtpTransport,
    host: String,
    port: u16,
    user: Option<String>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// One email to send: the words, and an optional attachment (file name, bytes).
pub struct Outgoing<'a> {
    pub mail: &'a Mail,
    pub attachment: Option<(&'a str, Vec<u8>)>,
}

impl Mailer {
    /// A mailer for the settings' server. `password` is needed when `smtp.user` is set.
    pub fn new(s: &SmtpSettings, password: Option<SecretString>) -> Result<Self, MailError> {
        let host = s
            .host
            .clone()
            .ok_or_else(|| MailError::NotConfigured("no SMTP server (smtp.host)".into()))?;
        let to: Vec<Mailbox> = s
            .recipients()
            .iter()
            .map(|a| mailbox("smtp.to", a))
            .collect::<Result<_, _>>()?;
        if to.is_empty() {
            return Err(MailError::NotConfigured("no recipient (smtp.to)".into()));
        }
        let from_text = s.from.as_deref().or(s.user.as_deref()).ok_or_else(|| {
            MailError::NotConfigured("no sender address (smtp.from or smtp.user)".into())
        })?;
        let from = mailbox(
            if s.from.is_some() {
                "smtp.from"
            } else {
                "smtp.user"
            },
            from_text,
        )?;
        if s.security == SmtpSecurity::None && !is_local_host(&host) {
            return Err(MailError::NotConfigured(
                "smtp.security 'none' is only allowed for a server on this computer".into(),
            ));
        }
        let tls = match s.security {
            SmtpSecurity::None => Tls::None,
            sec => {
                let mut b = TlsParameters::builder(host.clone());
                if let Some(path) = &s.ca_file {
                    b = b.add_root_certificate(read_ca(Path::new(path))?);
                }
                let params = b.build().map_err(|e| MailError::Tls {
                    host: host.clone(),
                    port: s.port,
                    detail: e.to_string(),
                })?;
                if sec == SmtpSecurity::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = SmtpTransport::builder_dangerous(host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = &s.user {
            let password = password.ok_or_else(|| {
                MailError::NotConfigured(format!(
                    "no SMTP password for {user}: run `driveback config set-secret smtp.password` or set {PASSWORD_ENV}"
                ))
            })?;
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            host,
            port: s.port,
            user: s.user.clone(),
            from,
            to,
        })
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn recipients(&self) -> Vec<String> {
        self.to.iter().map(|m| m.email.to_string()).collect()
    }

    /// Builds the MIME message: plain text and HTML as alternatives, and the attachment if any.
    pub fn message(&self, out: &Outgoing) -> Result<Message, MailError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(out.mail.subject.clone());
        for to in &self.to {
            b = b.to(to.clone());
        }
        let body = MultiPart::alternative_plain_html(out.mail.text.clone(), out.mail.html.clone());
        let msg = match &out.attachment {
            None => b.multipart(body),
            Some((name, bytes)) => b.multipart(MultiPart::mixed().multipart(body).singlepart(
                Attachment::new(name.to_string()).body(
                    bytes.clone(),
                    ContentType::parse("application/octet-stream").expect("a valid type"),
                ),
            )),
        };
        msg.map_err(|e| MailError::Build(e.to_string()))
    }

    /// Sends one email, once.
    pub fn send(&self, out: &Outgoing) -> Result<(), MailError> {
        let msg = self.message(out)?;
        self.transport
            .send(&msg)
            .map(|_| ())
            .map_err(|e| self.classify(&e))
    }

    /// Sends, trying again after `delays` while the error is transient.
    pub fn send_with_retry(&self, out: &Outgoing, delays: &[Duration]) -> Result<(), MailError> {
        let msg = self.message(out)?;
        let mut attempt = 0;
        loop {
            match self.transport.send(&msg).map_err(|e| self.classify(&e)) {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() && attempt < delays.len() => {
                    tracing::info!(error = %e, attempt = attempt + 1, "email not sent yet; trying again");
                    std::thread::sleep(delays[attempt]);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> MailError {
        let (host, port) = (self.host.clone(), self.port);
        // The lettre message may quote the server; it never holds our password.
        let detail = one_line(&error_chain(e));
        if let Some(code) = e.status() {
            let text = code.to_string();
            if text == "535" || text == "534" || (text == "530" && self.user.is_some()) {
                return MailError::Login {
                    user: self.user.clone().unwrap_or_default(),
                };
            }
            if e.is_transient() {
                return MailError::Transient { host, detail };
            }
            return MailError::Rejected { host, detail };
        }
        if e.is_tls() {
            return MailError::Tls { host, port, detail };
        }
        if e.is_permanent() {
            return MailError::Rejected { host, detail };
        }
        MailError::Connect { host, port, detail }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

fn read_ca(path: &Path) -> Result<Certificate, MailError> {
    let err = |detail: String| MailError::CaFile {
        path: path.display().to_string(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    Certificate::from_pem(&pem).map_err(|e| err(e.to_string()))
}
