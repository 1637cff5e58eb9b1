//! Who may do what: callers are authenticated once per call by a layer
//! (`authenticate`: client certificates, `--token-file`'s single token,
//! `--token-auth-file`'s users), and each request is checked once, where
//! the handlers validate it, against the policies (`check`, `policy`).
//!
//! The files are Kubernetes' own formats, read as kube-apiserver reads
//! them (a little stricter): the static token CSV (`token_users`), x509
//! client certificates whose CN is the user and O values the groups
//! (`client_cert`), and ABAC policies, one JSON object a line (`policy`).
//! Health and reflection stay open to everyone.

mod authenticate;
mod check;
mod client_cert;
mod policy;
mod token_users;
mod user;

pub(super) use authenticate::Authenticate;
pub use authenticate::Authenticators;
pub(super) use check::{Permissions, caller};
pub use policy::{API_VERSION, Action, Policy, Resource};
pub use token_users::TokenUsers;
pub use user::{ANONYMOUS, AUTHENTICATED, Caller, MASTERS, TOKEN_USER, UNAUTHENTICATED, User};
