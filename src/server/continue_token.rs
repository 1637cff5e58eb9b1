//! The `continue_token` of a paged `ListPods`: a store's [`ListPosition`]
//! and the namespace filter it was listed with, made opaque for the wire.
//!
//! A token is URL-safe base64 of a small protobuf body (so fields can be
//! added without breaking tokens in flight) followed by a CRC-32 of it. The
//! checksum catches a token that was cut, mangled or edited by hand, which
//! is refused as `INVALID_ARGUMENT` rather than continuing some other list.
//! It is not a signature: a hand-made token can only ask for a page that any
//! client could reach with a real one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message;

use crate::domain::{Invalid, PodKey};
use crate::store::ListPosition;

/// The request field the token travels in, named in refusals.
const FIELD: &str = "continue_token";

/// What a token carries.
#[derive(Clone, PartialEq, Message)]
struct Body {
    #[prost(uint64, tag = "1")]
    history: u64,
    #[prost(uint64, tag = "2")]
    version: u64,
    /// The namespace filter of the list ("" = all).
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(string, tag = "4")]
    after_namespace: String,
    #[prost(string, tag = "5")]
    after_name: String,
}

/// The token for the page after `next`, of a list of `namespace` ("" = all).
pub(super) fn encode(namespace: &str, next: &ListPosition) -> String {
    let mut bytes = Body {
        history: next.history,
        version: next.version,
        namespace: namespace.to_owned(),
        after_namespace: next.after.namespace.clone(),
        after_name: next.after.name.clone(),
    }
    .encode_to_vec();
    let checksum = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&checksum.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Where the list of `token` goes on, if `token` is one this server made for
/// a list of `namespace` ("" = all).
pub(super) fn decode(token: &str, namespace: &str) -> Result<ListPosition, Invalid> {
    let not_ours = || {
        Invalid::new(
            FIELD,
            "is not a token this server gave (it must be sent back exactly as received)",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| not_ours())?;
    let (body, checksum) = bytes.split_last_chunk::<4>().ok_or_else(not_ours)?;
    if crc32fast::hash(body) != u32::from_be_bytes(*checksum) {
        return Err(not_ours());
    }
    let body = Body::decode(body).map_err(|_| not_ours())?;
    if body.namespace != namespace {
        let shown = |ns: &str| {
            if ns.is_empty() {
                "every namespace".to_owned()
            } else {
                format!("namespace {ns:?}")
            }
        };
        return Err(Invalid::new(
            FIELD,
            format!(
                "belongs to a list of {}, not of {}: continue a list with the namespace it began with",
                shown(&body.namespace),
                shown(namespace)
            ),
        ));
    }
    Ok(ListPosition {
        history: body.history,
        version: body.version,
        after: PodKey::new(body.after_namespace, body.after_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> ListPosition {
        ListPosition {
            history: 0xfeed,
            version: 42,
            after: PodKey::new("production", "web-7"),
        }
    }

    #[test]
    fn a_token_gives_back_its_position() {
        let token = encode("production", &position());
        assert_eq!(decode(&token, "production").unwrap(), position());
        let everywhere = encode("", &position());
        assert_eq!(decode(&everywhere, "").unwrap(), position());
    }

    #[test]
    fn every_altered_character_is_refused() {
        let token = encode("production", &position());
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for at in 0..token.len() {
            for replacement in alphabet.chars() {
                let mut altered = token.clone();
                altered.replace_range(at..=at, &replacement.to_string());
                if altered == token {
                    continue;
                }
                // A changed last character may only change unused bits.
                if let Ok(decoded) = decode(&altered, "production") {
                    assert_eq!(at, token.len() - 1, "{altered} was accepted");
                    assert_eq!(decoded, position());
                }
            }
        }
    }

    #[test]
    fn malformed_tokens_are_refused_naming_the_field() {
        let token = encode("", &position());
        for bad in [
            "",
            "!!",
            "abc",
            &token[..token.len() - 2],
            &format!("{token}AA"),
        ] {
            let err = decode(bad, "").unwrap_err().to_string();
            assert!(
                err.starts_with("invalid continue_token: is not a token"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_token_is_refused_for_another_namespace() {
        let token = encode("production", &position());
        let err = decode(&token, "staging").unwrap_err().to_string();
        assert!(
            err.contains("of namespace \"production\", not of namespace \"staging\""),
            "{err}"
        );
        let err = decode(&token, "").unwrap_err().to_string();
        assert!(err.contains("not of every namespace"), "{err}");
    }
}
