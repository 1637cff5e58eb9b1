//! `--token-auth-file`: bearer tokens of named users, in Kubernetes' static
//! token file format, a CSV of `token,user,uid[,"group1,group2"]`.
//!
//! Read as kube-apiserver reads it (quoted fields, a quoted groups field
//! split on commas), but stricter where Kubernetes only warns: an empty or
//! repeated token, or a line of other than 3 or 4 fields, refuses start-up
//! with the line's number, since either is a mistake in the file that would
//! otherwise lock someone out or let someone in unnoticed.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::user::User;
use crate::contract::Token;

/// The users of a token file, each with a token.
#[derive(Clone)]
pub struct TokenUsers {
    entries: Arc<[Entry]>,
}

struct Entry {
    token: Token,
    user: Arc<User>,
}

impl TokenUsers {
    /// Reads a token file; the error names the file and the line.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read token file {}: {err}", path.display()))?;
        Self::parse(&text).map_err(|err| format!("token file {}: {err}", path.display()))
    }

    /// Parses the text of a token file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries: Vec<(usize, Entry)> = Vec::new();
        // Line by line, so that errors name the line of the file (a token
        // file's quoted fields never span lines).
        for (line, text) in (1..).zip(text.lines()) {
            if text.trim().is_empty() {
                continue;
            }
            // The csv crate reads an unclosed quote to the end; Go's reader,
            // and so kube-apiserver, refuses it.
            if text.matches('"').count() % 2 == 1 {
                return Err(format!("line {line}: not CSV: a quote is not closed"));
            }
            let record = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .trim(csv::Trim::Fields)
                .from_reader(text.as_bytes())
                .records()
                .next()
                .transpose()
                .map_err(|err| format!("line {line}: not CSV: {}", csv_reason(&err)))?
                .unwrap_or_default();
            let fields: Vec<&str> = record.iter().collect();
            let (token, name, uid, groups) = match fields[..] {
                [token, name, uid] => (token, name, uid, ""),
                [token, name, uid, groups] => (token, name, uid, groups),
                _ => {
                    return Err(format!(
                        "line {line}: has {} fields; a line is token,user,uid or \
                         token,user,uid,\"group1,group2\"",
                        fields.len()
                    ));
                }
            };
            let token = Token::new(token).map_err(|err| format!("line {line}: {err}"))?;
            if name.is_empty() {
                return Err(format!("line {line}: the user name (field 2) is empty"));
            }
            if let Some((first, _)) = entries
                .iter()
                .find(|(_, e)| e.token.as_bytes() == token.as_bytes())
            {
                return Err(format!(
                    "line {line}: the token of line {first} again: every user needs a token of \
                     their own"
                ));
            }
            let groups = groups.split(',').map(|g| g.trim().to_owned());
            let user = Arc::new(User::authenticated(name, uid, groups));
            entries.push((line, Entry { token, user }));
        }
        Ok(TokenUsers {
            entries: entries.into_iter().map(|(_, entry)| entry).collect(),
        })
    }

    /// How many users the file names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file names nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The user whose token `presented` is. Every token is compared, each
    /// in constant time, so the time taken says nothing about which token
    /// (or how much of one) matched.
    pub(super) fn user(&self, presented: &[u8]) -> Option<Arc<User>> {
        let mut found = 0u32;
        for (index, entry) in (1u32..).zip(self.entries.iter()) {
            let matches: Choice = entry.token.as_bytes().ct_eq(presented);
            found.conditional_assign(&index, matches);
        }
        let index = usize::try_from(found).ok()?.checked_sub(1)?;
        self.entries.get(index).map(|entry| Arc::clone(&entry.user))
    }
}

/// The csv crate's reason without its own position, which the line number
/// already gives.
fn csv_reason(err: &csv::Error) -> String {
    match err.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8 ({err})"),
        _ => err.to_string(),
    }
}

impl fmt::Debug for TokenUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.entries.iter().map(|e| e.user.name.as_str()).collect();
        f.debug_struct("TokenUsers").field("users", &users).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::access::user::AUTHENTICATED;

    #[test]
    fn reads_kubernetes_token_files() {
        let users = TokenUsers::parse(
            "t1,alice,1\n\
             t2, bob ,2,\"dev,ops\"\n\
             \n\
             t3,carol,3,readers\n",
        )
        .unwrap();
        assert_eq!(users.len(), 3);
        let bob = users.user(b"t2").unwrap();
        assert_eq!(bob.name, "bob");
        assert_eq!(bob.uid, "2");
        assert_eq!(bob.groups, ["dev", "ops", AUTHENTICATED]);
        assert_eq!(users.user(b"t1").unwrap().groups, [AUTHENTICATED]);
        assert_eq!(
            users.user(b"t3").unwrap().groups,
            ["readers", AUTHENTICATED]
        );
        assert!(users.user(b"t4").is_none());
        assert!(users.user(b"t").is_none());
        assert!(users.user(b"").is_none());
    }

    #[test]
    fn refuses_bad_lines_naming_them() {
        let cases = [
            ("t1,alice,1\nt2,bob\n", "line 2: has 2 fields"),
            ("t1,alice,1\n\nt2,bob,2,g,extra\n", "line 3: has 5 fields"),
            ("t1,alice,1\n,bob,2\n", "line 2: the token is empty"),
            ("t1,,1\n", "line 1: the user name (field 2) is empty"),
            (
                "t1,alice,1\nt1,bob,2\n",
                "line 2: the token of line 1 again",
            ),
            ("t1,alice,1\nt2,\"bob,2\n", "line 2: not CSV"),
            ("t 1,alice,1\n", "line 1: the token must be visible ASCII"),
        ];
        for (text, expected) in cases {
            let err = TokenUsers::parse(text).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn debug_shows_users_not_tokens() {
        let users = TokenUsers::parse("s3cret,alice,1\n").unwrap();
        let shown = format!("{users:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
