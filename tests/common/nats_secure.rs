//! Real NATS JetStream clusters that ask their clients for more than a
//! connection, for the tests of `pod-server`'s NATS TLS and credentials:
//! over TLS with client certificates verified (a `tls { cert_file,
//! key_file, ca_file, verify: true }` block, the certificates of
//! `super::pki`), or with a user and password (an `authorization { user,
//! password }` block). Their nodes are `super::nats`'s with a
//! configuration file (`-c`) holding that block, next to the node's data
//! directory; routes and monitoring stay plaintext on loopback.

use std::marker::PhantomData;
use std::process::Command;
use std::sync::OnceLock;

use super::cluster::{Cluster, Daemon, Health, Member, View};
use super::nats::{CLIENT, MONITOR, Nats, node_health, node_view};
use super::pki;

/// What a secured cluster asks of its clients.
pub trait Guard: Send + Sync + 'static {
    /// The daemon's name in messages and directories.
    const NAME: &'static str;
    /// The scheme of its client URLs.
    const SCHEME: &'static str;
    /// The block of the configuration file.
    fn config() -> String;
}

/// TLS, client certificates verified.
pub struct Tls;

impl Guard for Tls {
    const NAME: &'static str = "nats-tls";
    const SCHEME: &'static str = "tls";

    fn config() -> String {
        let certs = pki::shared();
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n}}\n",
            certs.cert, certs.key, certs.ca
        )
    }
}

/// A user and a password, plaintext.
pub struct Password;

/// The user and password [`Password`] clusters take.
pub const USER: &str = "pods";
pub const PASSWORD: &str = "s3cret-for-tests";

impl Guard for Password {
    const NAME: &'static str = "nats-password";
    const SCHEME: &'static str = "nats";

    fn config() -> String {
        format!("authorization {{\n  user: {USER:?}\n  password: {PASSWORD:?}\n}}\n")
    }
}

/// A NATS node of `super::nats` guarded by `G`.
pub struct Secured<G: Guard> {
    nats: Nats,
    guard: PhantomData<G>,
}

/// A running NATS cluster guarded by `G`.
pub type SecuredNats<G> = Cluster<Secured<G>>;

impl<G: Guard> Daemon for Secured<G> {
    const NAME: &'static str = G::NAME;
    const MEMBER: &'static str = "node";
    const PROGRAM: &'static str = "nats-server";
    const PACKAGE: &'static str = "nats-server";
    const PORTS: usize = 3;

    fn member_name(i: usize) -> String {
        Nats::member_name(i)
    }

    fn settings(tag: String, members: &[Member]) -> Self {
        Secured {
            nats: Nats::settings(tag, members),
            guard: PhantomData,
        }
    }

    fn args(&self, command: &mut Command, node: &Member, rejoining: bool) {
        let config = node.data_dir.with_extension("conf");
        std::fs::write(&config, G::config())
            .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        // The command line's flags add to the file's settings.
        command.arg("-c").arg(&config);
        self.nats.args(command, node, rejoining);
    }

    async fn check(cluster: &SecuredNats<G>, i: usize) -> Health {
        node_health(cluster.member(i).ports[MONITOR], cluster.len()).await
    }

    async fn view(cluster: &SecuredNats<G>, i: usize) -> Result<View, String> {
        node_view(cluster.member(i)).await
    }
}

impl<G: Guard> SecuredNats<G> {
    /// Every node's client URL, `tls://` or `nats://127.0.0.1:PORT`.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len())
            .map(|i| format!("{}://127.0.0.1:{}", G::SCHEME, self.member(i).ports[CLIENT]))
            .collect()
    }

    /// The client URLs comma-joined, as `--nats-url` takes them.
    pub fn urls_arg(&self) -> String {
        self.urls().join(",")
    }
}

/// The 3-node TLS cluster of this test binary, started by the first call
/// and alive until the process exits.
pub fn shared_tls() -> &'static SecuredNats<Tls> {
    static SHARED: OnceLock<SecuredNats<Tls>> = OnceLock::new();
    Cluster::share(&SHARED)
}
