//! `WatchPods`' response message by hand, so that a watch sends the store's
//! pods as they are.
//!
//! On the wire a [`WatchedPod`] is the contract's `Pod`, byte for byte; the
//! server stubs name it as `WatchPods`' response type (`build.rs`), while the
//! client stubs decode a plain [`Pod`]. What it saves is per delivery, and a
//! change is delivered once to every watcher: the generated type would need
//! a copy of each pod (three strings) to hand to tonic, where this one holds
//! the store's shared `Arc<Pod>`.

use std::sync::Arc;

use bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use super::messages::Pod;

/// One pod of a `WatchPods` stream, as the server sends it: the store's
/// shared pod, encoded when sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchedPod(pub Arc<Pod>);

impl From<Pod> for WatchedPod {
    fn from(pod: Pod) -> Self {
        WatchedPod(Arc::new(pod))
    }
}

impl Message for WatchedPod {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.0.encode_raw(buf)
    }

    /// Only for completeness (the server never decodes one).
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        Arc::make_mut(&mut self.0).merge_field(tag, wire_type, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.encoded_len()
    }

    fn clear(&mut self) {
        *self = WatchedPod::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_pod_is_a_pod_on_the_wire() {
        let pod = Pod {
            name: "web".into(),
            namespace: "default".into(),
            status: "Running".into(),
            replicas: 2,
            resource_version: 7,
            deleted: false,
            bookmark: false,
        };
        let plain = pod.encode_to_vec();
        let watched = WatchedPod::from(pod.clone());
        assert_eq!(watched.encode_to_vec(), plain);
        assert_eq!(watched.encoded_len(), plain.len());
        assert_eq!(
            Pod::decode(watched.encode_to_vec().as_slice()).unwrap(),
            pod
        );
        assert_eq!(WatchedPod::decode(plain.as_slice()).unwrap(), watched);
    }
}
