//! The token that a server may require on every PodService call, sent as
//! `authorization: Bearer <token>`: read by clients from a file or from
//! [`TOKEN_ENV`], checked by the server's token layer.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// The environment variable that holds the token, for server and clients.
pub const TOKEN_ENV: &str = "POD_SERVICE_TOKEN";

/// A shared secret. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// A token from text: surrounding whitespace is ignored; it must be
    /// non-empty visible ASCII, as an HTTP header value requires.
    pub fn new(text: &str) -> Result<Self, String> {
        let token = text.trim();
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be visible ASCII without spaces".into());
        }
        Ok(Token(token.into()))
    }

    /// Reads a token from a file (a trailing newline is fine).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read token file {}: {err}", path.display()))?;
        Token::new(&text).map_err(|err| format!("token file {}: {err}", path.display()))
    }

    /// The token a program is configured with: read from `file` if given,
    /// else taken from [`TOKEN_ENV`] if set (only from the environment, so
    /// that it stays out of process listings), else none.
    pub fn configured(file: Option<&Path>) -> Result<Option<Self>, String> {
        match (file, std::env::var(TOKEN_ENV)) {
            (Some(path), _) => Token::from_file(path).map(Some),
            (None, Ok(text)) => Token::new(&text)
                .map(Some)
                .map_err(|err| format!("{TOKEN_ENV}: {err}")),
            (None, Err(_)) => Ok(None),
        }
    }

    /// The token's bytes, for the server's constant-time comparisons.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The value of the `authorization` header that carries this token.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `presented` is this token. The comparison takes the same
    /// time wherever the tokens differ.
    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        presented.ct_eq(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let token = Token::new("s3cret\n").unwrap();
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b"s3cret2"));
        assert!(!token.matches(b""));
        assert!(Token::new("  ").is_err());
        assert!(Token::new("two words").is_err());
        assert_eq!(format!("{token:?}"), "Token(..)");
    }
}
