//! Bearer tokens: who may use the node's client services, and who may administer it.
//!
//! `--auth-token-file` holds the token clients present (Kv, Actors); `--admin-token-file` the
//! one for Admin and the actor inspector (everything that lists actors or changes membership),
//! which is also accepted where the client token is. A request carries it as
//! `authorization: Bearer <token>` (the CLI's `--token` / `MORTAR_TOKEN`; the HTTP gateway takes
//! the same header, at the client level, and answers 401). Missing or wrong:
//! `UNAUTHENTICATED`; the client token on an admin service: `PERMISSION_DENIED`; each refusal is
//! counted in `mortar_node_auth_refused_total{reason}`. Without either file every request is
//! accepted, as before. Refusals never echo what was presented, nor the cluster id.
//!
//! Tokens are compared as BLAKE3 hashes (the crate's `Hash` compares in constant time), so the
//! time a refusal takes says nothing about the token. The internal services (epoxy, the control
//! plane) are not covered: they are for peers, which TLS will authenticate.

use std::path::Path;
use std::sync::Arc;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Shortest token accepted, in characters.
pub const TOKEN_CHARS_MIN: usize = 16;
/// Longest secret file read (a token, the gossip key): a secret is a few dozen bytes.
const SECRET_FILE_BYTES_MAX: u64 = 4096;

/// A secret's file as bytes, without trailing whitespace (a newline an editor added). Errors
/// say why the file cannot be read, never what it holds.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > SECRET_FILE_BYTES_MAX {
        return Err(format!("it is {len} bytes, more than {SECRET_FILE_BYTES_MAX}"));
    }
    let mut secret = std::fs::read(path).map_err(|e| e.to_string())?;
    while secret.last().is_some_and(|b| b.is_ascii_whitespace()) {
        secret.pop();
    }
    Ok(secret)
}

/// A token as the node keeps it: its hash, and the text it sends as its own credential.
#[derive(Clone)]
pub struct Token {
    hash: blake3::Hash,
    header: MetadataValue<Ascii>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its text: at least [`TOKEN_CHARS_MIN`] visible ASCII characters.
    pub fn new(text: &str) -> Result<Token, String> {
        if text.len() < TOKEN_CHARS_MIN {
            return Err(format!(
                "a token has at least {TOKEN_CHARS_MIN} characters, this one {}",
                text.len()
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token is visible ASCII characters only (no spaces)".to_string());
        }
        let header =
            format!("Bearer {text}").parse().map_err(|_| "the token is not valid in a header".to_string())?;
        Ok(Token { hash: blake3::hash(text.as_bytes()), header })
    }

    /// A token from its file, without trailing whitespace. Errors name the file, never its text.
    pub fn from_file(path: &Path) -> Result<Token, String> {
        let secret = read_secret_file(path)?;
        let text = std::str::from_utf8(&secret)
            .map_err(|_| "a token is visible ASCII characters only".to_string())?;
        Token::new(text)
    }

    fn matches(&self, presented: &str) -> bool {
        blake3::hash(presented.as_bytes()) == self.hash
    }
}

/// The node's tokens.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    pub client: Option<Token>,
    pub admin: Option<Token>,
}

impl Tokens {
    /// What this node presents to another node's client services (a forwarded actor call, a
    /// join): its admin token if it has one, else its client token.
    pub fn own(&self) -> Option<Token> {
        self.admin.clone().or_else(|| self.client.clone())
    }
}

/// Which services a check guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Kv, Actors: the client or the admin token.
    Client,
    /// Admin, the actor inspector: the admin token (the client one when no admin token is set).
    Admin,
}

/// The server side: a tonic interceptor that lets through only requests with the right token.
#[derive(Clone, Debug)]
pub struct Check {
    tokens: Arc<Tokens>,
    level: Level,
}

impl Check {
    pub fn new(tokens: Arc<Tokens>, level: Level) -> Check {
        Check { tokens, level }
    }
}

/// A request extension [`Check`] adds when the caller may administer the cluster (it presented
/// the admin token, or the client token where no admin token is set, or the cluster has no
/// tokens): what `Actors.Call` needs for the runtime's administrative actions (`$destroy`).
#[derive(Clone, Copy, Debug)]
pub struct Administrator;

/// Why [`Tokens::admit`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The request carries no `Bearer` token.
    Missing,
    /// The token presented is neither of the node's.
    Wrong,
    /// The client token, on a service that needs the admin one.
    NotAdmin,
}

impl Refusal {
    /// The label of `mortar_node_auth_refused_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
            Refusal::NotAdmin => "not-admin",
        }
    }

    /// Counts the refusal in `mortar_node_auth_refused_total{reason}`.
    pub fn count(self) {
        metrics::counter!("mortar_node_auth_refused_total", "reason" => self.reason()).increment(1);
    }
}

impl Tokens {
    /// Whether a request whose `authorization` value is `authorization` may use services of
    /// `level`: `Ok(true)` when the caller may also administer the cluster (see
    /// [`Administrator`]). Every service that takes tokens, gRPC ([`Check`]) or HTTP (the
    /// gateway), decides through this. Counts nothing: the caller counts the refusal it answers.
    pub fn admit(&self, authorization: Option<&str>, level: Level) -> Result<bool, Refusal> {
        let Tokens { client, admin } = self;
        if client.is_none() && admin.is_none() {
            return Ok(true);
        }
        let Some(presented) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return Err(Refusal::Missing);
        };
        let is_admin = admin.as_ref().is_some_and(|t| t.matches(presented));
        let is_client = client.as_ref().is_some_and(|t| t.matches(presented));
        let administrator = is_admin || (is_client && admin.is_none());
        match level {
            _ if is_admin => Ok(administrator),
            Level::Client if is_client => Ok(administrator),
            Level::Admin if is_client && admin.is_none() => Ok(administrator),
            Level::Admin if is_client => Err(Refusal::NotAdmin),
            _ => Err(Refusal::Wrong),
        }
    }
}

impl Interceptor for Check {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let authorization = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match self.tokens.admit(authorization, self.level) {
            Ok(administrator) => {
                if administrator {
                    request.extensions_mut().insert(Administrator);
                }
                Ok(request)
            }
            Err(refusal) => {
                refusal.count();
                Err(match refusal {
                    Refusal::Missing => Status::unauthenticated(
                        "this cluster needs a token: pass --token or set MORTAR_TOKEN",
                    ),
                    Refusal::NotAdmin => {
                        Status::permission_denied("this needs the admin token; the token given is a client's")
                    }
                    Refusal::Wrong => Status::unauthenticated("the token is not valid for this cluster"),
                })
            }
        }
    }
}

/// The client side: adds a token to every request (none: the request goes as it is).
#[derive(Clone, Debug, Default)]
pub struct Bearer(pub Option<Token>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert("authorization", token.header.clone());
        }
        Ok(request)
    }
}

/// A channel whose requests carry a token.
pub type AuthChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

/// `channel` with `token` on every request.
pub fn with_token(channel: tonic::transport::Channel, token: Option<Token>) -> AuthChannel {
    tonic::service::interceptor::InterceptedService::new(channel, Bearer(token))
}

#[cfg(test)]
#[path = "auth_test.rs"]
mod tests;
