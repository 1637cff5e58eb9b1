//! The servers of one registry that a client moves between: several
//! stateless replicas serving one store. Any of them can carry on where
//! another left off, because what a client keeps of its place (the version
//! a watch reflects, a list's continue token) is the store's, not the
//! server's.
//!
//! A client uses one server at a time, the current one. When it fails, the
//! client moves to the next in the list, going round, so that the server
//! that just failed is the last to be tried again.

use super::connect::{CallFailed, Client, ClientConfig, connect_first, connect_lazy_to};
use super::retry::is_server_failure;

/// See the module docs. Never empty.
#[derive(Debug, Clone)]
pub struct Servers {
    replicas: Vec<Replica>,
    /// The index of the server in use.
    current: usize,
}

#[derive(Debug, Clone)]
struct Replica {
    /// `None` for a client handed over as such, whose address is not known.
    addr: Option<String>,
    /// Connects when first used, and again after a failure, by itself.
    client: Client,
}

impl Servers {
    /// Connects to the first of the config's addresses that accepts a
    /// connection (see [`connect`](super::connect)); the others connect
    /// when the client first moves to them.
    pub async fn connect(config: &ClientConfig) -> anyhow::Result<Self> {
        let (current, connected) = connect_first(config).await?;
        let mut servers = Servers::lazy(config)?;
        servers.replicas[current].client = connected;
        servers.current = current;
        Ok(servers)
    }

    /// The config's servers, each connecting when first used, starting
    /// with the first: no server need be up yet.
    pub(super) fn lazy(config: &ClientConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(!config.addrs.is_empty(), "no server address given");
        let replicas = config
            .addrs
            .iter()
            .map(|addr| {
                Ok(Replica {
                    addr: Some(addr.clone()),
                    client: connect_lazy_to(config, addr)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Servers {
            replicas,
            current: 0,
        })
    }

    /// How many servers there are to move between (at least one).
    pub fn count(&self) -> usize {
        self.replicas.len()
    }

    /// The address of the server in use (`None` for a client handed over
    /// as such).
    pub fn addr(&self) -> Option<&str> {
        self.replicas[self.current].addr.as_deref()
    }

    /// Every address, as messages name them: `http://a, http://b`.
    pub fn addr_list(&self) -> String {
        let addrs: Vec<&str> = self
            .replicas
            .iter()
            .map(|replica| replica.addr.as_deref().unwrap_or("the server"))
            .collect();
        addrs.join(", ")
    }

    /// The client of the server in use.
    pub fn client(&mut self) -> &mut Client {
        &mut self.replicas[self.current].client
    }

    /// After a failure of the server in use: moves to the next (going round).
    pub fn fail_over(&mut self) {
        self.current = (self.current + 1) % self.replicas.len();
    }

    /// Runs a one-shot call on the server in use and, while it fails as a
    /// server fails (unreachable, stopping, no answer in time), on each of
    /// the others in turn: every server at most once. Any other error is the answer, as any replica would
    /// give it. `call` is expected to fail with a [`CallFailed`], as
    /// [`with_deadline`](super::with_deadline) does.
    pub async fn call<T>(
        &mut self,
        mut call: impl AsyncFnMut(&mut Client) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut failed = 0;
        loop {
            let error = match call(self.client()).await {
                Ok(answer) => return Ok(answer),
                Err(error) if is_servers_failure(&error) => error,
                Err(error) => return Err(error),
            };
            failed += 1;
            self.fail_over();
            if failed == self.count() {
                return Err(match failed {
                    1 => error,
                    _ => error.context(format!("no answer from any of {}", self.addr_list())),
                });
            }
        }
    }
}

/// Whether an error is a [`CallFailed`] that another server may not share.
fn is_servers_failure(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<CallFailed>()
            .is_some_and(|failed| is_server_failure(failed.code))
    })
}

/// The one server of a client handed over as such.
impl From<Client> for Servers {
    fn from(client: Client) -> Self {
        Servers {
            replicas: vec![Replica { addr: None, client }],
            current: 0,
        }
    }
}

/// As `From<Client>`, for a caller that keeps its client (clients are
/// cheap handles on one connection).
impl From<&mut Client> for Servers {
    fn from(client: &mut Client) -> Self {
        Servers::from(client.clone())
    }
}
