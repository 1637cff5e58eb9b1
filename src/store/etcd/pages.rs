//! Continued lists, read from etcd itself at the first page's revision, as
//! kube-apiserver hands them to etcd: they work on every replica, whatever
//! its cache holds (it may have started later, or over), until etcd
//! compacts that revision.

use std::sync::Arc;

use super::api::etcdserverpb::RangeRequest;
use super::client::ReadError;
use super::keys::{self, Kind};
use super::registry;
use super::shared::Shared;
use crate::domain::PodKey;
use crate::store::error::StoreError;
use crate::store::list::{ListPosition, PodPage};

impl Shared {
    /// The page after `from`, as the registry was at `from.version`.
    pub(super) async fn list_page(
        &self,
        namespace: Option<String>,
        from: ListPosition,
        limit: usize,
    ) -> Result<PodPage, StoreError> {
        let expired = |oldest| StoreError::ListExpired {
            version: from.version,
            oldest,
        };
        if from.history != self.cluster {
            return Err(expired(None));
        }
        let (_, range_end) = self.keys.pods(namespace.as_deref());
        let page = self
            .etcd
            .range(RangeRequest {
                key: self.keys.after(&from.after),
                range_end,
                limit: i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
                revision: i64::try_from(from.version).unwrap_or(i64::MAX),
                ..RangeRequest::default()
            })
            .await;
        let page = match page {
            Err(ReadError::Compacted) => return Err(expired(self.compacted_at().await)),
            page => page?,
        };
        let pods = page
            .kvs
            .iter()
            .map(|kv| {
                match self.keys.kind(&kv.key) {
                    Kind::Pod(key) => keys::decode(&key, &kv.value, kv.mod_revision).map(Arc::new),
                    _ => None,
                }
                .ok_or_else(|| registry::foreign(&self.keys, &kv.key))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = match pods.last() {
            Some(last) if page.more => Some(ListPosition {
                history: self.cluster,
                version: from.version,
                after: PodKey::of(last),
            }),
            _ => None,
        };
        Ok(PodPage {
            pods,
            version: from.version,
            next,
        })
    }
}
