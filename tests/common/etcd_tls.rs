//! A real etcd cluster that serves its clients over TLS and requires
//! their certificates (`--client-cert-auth`), as kube-apiserver's etcd
//! is run: the tests of `pod-server --etcd-cafile --etcd-certfile
//! --etcd-keyfile`. Its members are `super::etcd`'s, with `https://`
//! client URLs, the certificates of `super::pki`, and a plain-HTTP
//! metrics listener (`--listen-metrics-urls`), which also serves
//! `/health`, for the readiness check; the peer URLs stay plaintext on
//! loopback.

use std::process::Command;
use std::sync::OnceLock;

use super::cluster::{Cluster, Daemon, Health, Member, View, probe};
use super::etcd::{CLIENT, Etcd};
use super::pki;

/// A running etcd cluster on loopback that requires client certificates.
pub type EtcdTlsCluster = Cluster<EtcdTls>;

/// The index of a member's metrics port in [`Member::ports`], after the
/// client and peer ports.
const METRICS: usize = 2;

/// What every member shares: `super::etcd`'s settings.
pub struct EtcdTls(Etcd);

impl Daemon for EtcdTls {
    const NAME: &'static str = "etcd-tls";
    const MEMBER: &'static str = "member";
    const PROGRAM: &'static str = "etcd";
    const PACKAGE: &'static str = "etcd-server";
    const PORTS: usize = 3;

    fn member_name(i: usize) -> String {
        Etcd::member_name(i)
    }

    fn settings(tag: String, members: &[Member]) -> Self {
        EtcdTls(Etcd::settings(tag, members))
    }

    fn args(&self, command: &mut Command, member: &Member, rejoining: bool) {
        let certs = pki::shared();
        let client = format!("https://127.0.0.1:{}", member.ports[CLIENT]);
        let metrics = format!("http://127.0.0.1:{}", member.ports[METRICS]);
        self.0.args_serving(command, member, rejoining, &client);
        command
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(&certs.ca)
            .arg("--cert-file")
            .arg(&certs.cert)
            .arg("--key-file")
            .arg(&certs.key)
            .args(["--listen-metrics-urls", &metrics]);
    }

    /// `GET /health` on the metrics listener says `{"health":"true"}`.
    async fn check(cluster: &EtcdTlsCluster, i: usize) -> Health {
        let port = cluster.member(i).ports[METRICS];
        probe(port, "/health", |json| json["health"] == "true").await
    }

    /// Not asked: the tests of this cluster inject no faults.
    async fn view(_: &EtcdTlsCluster, _: usize) -> Result<View, String> {
        Err("an etcd cluster over TLS is not asked for its leader".into())
    }
}

impl EtcdTlsCluster {
    /// The 3-member cluster of this test binary, started by the first call
    /// and alive until the process exits.
    pub fn shared() -> &'static EtcdTlsCluster {
        static SHARED: OnceLock<EtcdTlsCluster> = OnceLock::new();
        Cluster::share(&SHARED)
    }

    /// Every member's client URL, `https://127.0.0.1:PORT`, comma-joined,
    /// as `--etcd-endpoints` takes them.
    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.len())
            .map(|i| format!("https://127.0.0.1:{}", self.member(i).ports[CLIENT]))
            .collect()
    }
}
