//! A caller's write order: what the contract orders, and nothing more.
//!
//! The contract promises that one `SyncPods` session's ops are applied and
//! acknowledged in the order it sent them; between sessions it promises
//! only what the store gives (one total order, consistent with real time).
//! A session therefore holds one [`WriteOrder`] and submits every write
//! with it. A backend that runs writes at once (etcd, whose throughput
//! comes from many transactions in flight) starts each write only when the
//! one submitted before it with the same order is done; writes of
//! different orders run side by side. An embedded backend commits every
//! write through one queue in submission order anyway, so it need not look.

use tokio::sync::oneshot;

/// One caller's writes, in the order it submitted them. See the module
/// docs. A new one (the [`Default`]) orders nothing yet.
#[derive(Debug, Default)]
pub struct WriteOrder {
    /// Closed when the write submitted last with this order is done.
    last: Option<oneshot::Receiver<()>>,
}

/// A write's place in its [`WriteOrder`]: it goes once [`Turn::come`]
/// resolves, and lets the next write of the order go when the turn is
/// dropped (done: committed, refused, unconfirmed, or never sent).
#[derive(Debug)]
pub(crate) struct Turn {
    before: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl WriteOrder {
    /// The turn of the write submitted now, after every write submitted
    /// before it with this order.
    pub(crate) fn next_turn(&mut self) -> Turn {
        let (done, next) = oneshot::channel();
        Turn {
            before: self.last.replace(next),
            _done: done,
        }
    }
}

impl Turn {
    /// Resolves once the write before this one in its order is done.
    pub(crate) async fn come(&mut self) {
        if let Some(before) = self.before.take() {
            // Dropped without a send is how a turn ends: either way, done.
            let _ = before.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn each_turn_waits_for_the_one_before_it_in_its_order_only() {
        let (mut session, mut other) = (WriteOrder::default(), WriteOrder::default());
        let mut first = session.next_turn();
        let mut second = session.next_turn();
        let mut elsewhere = other.next_turn();

        assert!(
            first.come().now_or_never().is_some(),
            "the first goes at once"
        );
        assert!(
            elsewhere.come().now_or_never().is_some(),
            "another order's write does not wait for this one's"
        );
        let mut waiting = Box::pin(second.come());
        assert!((&mut waiting).now_or_never().is_none(), "the second waits");
        drop(first);
        assert!(
            waiting.now_or_never().is_some(),
            "and goes once the first is done"
        );
    }
}
