//! Who a caller is: a user name, a uid and groups, as Kubernetes' `user.Info`
//! has them, and the names Kubernetes gives to the special users and groups.

use std::fmt;
use std::sync::Arc;

/// Every authenticated user is also in this group, so that a policy can
/// name "whoever has any credential".
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of the anonymous user.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// Members of this group may do everything, whatever the policies say, as
/// in Kubernetes: the server's single `--token-file` token belongs to it.
pub const MASTERS: &str = "system:masters";
/// The name of a caller on a server that authenticates nobody.
pub const ANONYMOUS: &str = "system:anonymous";
/// The name of the user of the single `--token-file` token.
pub const TOKEN_USER: &str = "token";

/// An authenticated caller (or the anonymous one). Shared by every request
/// of a token or a certificate, so passing it along is a reference count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user name policies match on `user`.
    pub name: String,
    /// A stable identifier (the token file's third field), for the logs.
    pub uid: String,
    /// The groups policies match on `group`.
    pub groups: Vec<String>,
}

impl User {
    /// An authenticated user: `groups` plus [`AUTHENTICATED`].
    pub fn authenticated(name: &str, uid: &str, groups: impl IntoIterator<Item = String>) -> Self {
        let mut groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_owned());
        }
        User {
            name: name.to_owned(),
            uid: uid.to_owned(),
            groups,
        }
    }

    /// The caller of a server configured to authenticate nobody.
    pub fn anonymous() -> Self {
        User {
            name: ANONYMOUS.to_owned(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED.to_owned()],
        }
    }

    /// The holder of the server's single token: every permission.
    pub fn token_holder() -> Self {
        User::authenticated(TOKEN_USER, "", [MASTERS.to_owned()])
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.name)
    }
}

/// The user a request was authenticated as, left in its extensions by the
/// authentication layer for the handlers' checks.
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<User>);
