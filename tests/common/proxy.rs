//! A TCP proxy whose connections can go silent: after [`Proxy::vanish`] the
//! connections open at that moment forward nothing in either direction but
//! keep their sockets open, like a peer whose machine lost power or whose
//! network path died. Neither side sees a FIN or a reset; only keepalive
//! can tell. Connections made later work, as over a repaired path.
//!
//! It also counts the bytes the server sent ([`Proxy::bytes_from_server`]):
//! what a client's calls cost, seen from the wire.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: SocketAddr,
    /// One flag per connection made so far.
    connections: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    /// Bytes forwarded from the server to clients, on every connection.
    from_server: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let connections = Arc::new(Mutex::new(Vec::new()));
        let from_server = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let connections = Arc::clone(&connections);
            let from_server = Arc::clone(&from_server);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(target).await else {
                        continue;
                    };
                    let silent = Arc::new(AtomicBool::new(false));
                    connections.lock().unwrap().push(Arc::clone(&silent));
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let sent = Arc::new(AtomicU64::new(0));
                    tokio::spawn(forward(
                        client_read,
                        server_write,
                        Arc::clone(&silent),
                        sent,
                    ));
                    tokio::spawn(forward(
                        server_read,
                        client_write,
                        Arc::clone(&silent),
                        Arc::clone(&from_server),
                    ));
                }
            }
        });
        Proxy {
            addr,
            connections,
            from_server,
            task,
        }
    }

    /// How many bytes the server has sent through the proxy so far.
    pub fn bytes_from_server(&self) -> u64 {
        self.from_server.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on nothing passes on the connections open now; their
    /// sockets stay open.
    pub fn vanish(&self) {
        for silent in self.connections.lock().unwrap().iter() {
            silent.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
) {
    let mut buffer = vec![0; 64 << 10];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if silent.load(Ordering::SeqCst) {
            // Swallow everything, forever, holding both sockets.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
        forwarded.fetch_add(read as u64, Ordering::SeqCst);
    }
}
