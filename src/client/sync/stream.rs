//! The `SyncPods` call of a session, which may still be opening when its
//! first op is sent.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::client::connect::Client;
use crate::contract::{SyncEvent, SyncRequest};

pub(super) type Outbound = mpsc::Sender<SyncRequest>;

/// Opens a SyncPods call. The call is not awaited here: servers need not
/// send the response headers before the first event (grpc-go sends them
/// with it), and the first event may only come after our first request, so
/// waiting for the headers before sending anything could wait forever.
pub(super) fn open_stream(client: &Client) -> (Outbound, Events) {
    let (requests, outbound) = mpsc::channel::<SyncRequest>(64);
    let mut client = client.clone();
    let opening = Box::pin(async move {
        let response = client.sync_pods(ReceiverStream::new(outbound)).await?;
        Ok(response.into_inner())
    });
    (requests, Events::Opening(opening))
}

/// The events of a SyncPods call that may still be opening.
pub(super) enum Events {
    Opening(futures::future::BoxFuture<'static, Result<Streaming<SyncEvent>, Status>>),
    Open(Box<Streaming<SyncEvent>>),
}

impl Events {
    /// The next event. Cancel-safe: an interrupted open resumes on the next call.
    pub async fn message(&mut self) -> Result<Option<SyncEvent>, Status> {
        if let Events::Opening(opening) = self {
            *self = Events::Open(Box::new(opening.await?));
        }
        match self {
            Events::Open(events) => events.message().await,
            Events::Opening(_) => unreachable!("opened just above"),
        }
    }
}
