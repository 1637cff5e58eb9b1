//! A resumable watch of pods, as `kubectl get pods -w` does it.
//!
//! [`PodWatch`] keeps a cache of the pods it has seen. It lists first
//! (`ListPods`), then watches from the list's version (`WatchPods`), so the
//! list and the changes together form a consistent view. When the stream
//! ends (the server dropped a slow watcher, restarted, or the connection
//! broke) it waits with capped, jittered backoff and resumes from the
//! newest version it holds (see [`resume`](super::resume)): its last
//! change, or the last bookmark, which the server sends to a quiet watch so
//! that its place stays current; if the server can no longer continue from
//! there (`OUT_OF_RANGE`), it lists again and reports only the difference
//! from its cache. So no change is reported twice and none is missed.
//!
//! Given several [`Servers`], replicas of one registry, each resume goes to
//! the next of them: a watch whose server died carries on at another, from
//! the same version.
//!
//! A watch [`named`](PodWatch::named) follows one pod, as `kubectl get pod
//! NAME -w`: the list and the watch carry its name, so the server reads
//! and sends that pod only, and bookmarks keep its place however busy the
//! rest of the store is.

use std::collections::VecDeque;
use std::time::Duration;

use tonic::{Code, Status, Streaming};

use super::cache::{PodCache, PodEvent};
use super::list::{DEFAULT_PAGE_SIZE, Pages, list_pages};
use super::resume::Resumer;
use super::servers::Servers;
use crate::contract::{ListPodsRequest, Pod};

/// What [`PodWatch::next`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchUpdate {
    /// The result of a (re)list: the differences from what was known before
    /// (on the first list, every pod as `Added`).
    Listed(Vec<PodEvent>),
    /// One change from the watch stream.
    Changed(PodEvent),
    /// A bookmark: the view is complete up to `version`, where a resumed
    /// watch will continue from, though nothing in it changed.
    Progressed {
        /// The version the view reflects now.
        version: u64,
    },
    /// The stream ended; the watch resumes by itself after `retry_in`.
    Interrupted {
        /// The status that ended it, as `CODE: message`.
        reason: String,
        /// How long until the watch resumes.
        retry_in: Duration,
        /// All of it as one line to print: `watch interrupted (REASON);
        /// resuming from version V at SERVER in 0.1s`.
        note: String,
    },
}

/// See the module docs.
pub struct PodWatch {
    resumer: Resumer,
    namespace: String,
    /// "" = every pod of the namespace.
    name: String,
    cache: PodCache,
    /// The version the view reflects: where a resumed watch continues from.
    version: u64,
    listed: bool,
    stream: Option<Streaming<Pod>>,
    pending: VecDeque<WatchUpdate>,
    /// Whether the watch asks for bookmarks (the default).
    bookmarks: bool,
}

impl PodWatch {
    /// A watch of one namespace (`""` = every namespace), on a client or
    /// on several servers.
    pub fn new(servers: impl Into<Servers>, namespace: impl Into<String>) -> Self {
        PodWatch {
            resumer: Resumer::new(servers.into()),
            namespace: namespace.into(),
            name: String::new(),
            cache: PodCache::default(),
            version: 0,
            listed: false,
            stream: None,
            pending: VecDeque::new(),
            bookmarks: true,
        }
    }

    /// Only the pod of this name in the namespace (which must be set: the
    /// server refuses a name without one): its current state, if it
    /// exists, then its changes, its delete and a re-creation included.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Without bookmarks: a watch of a quiet namespace then keeps the
    /// version of its last change, and may have to list again to resume.
    pub fn without_bookmarks(mut self) -> Self {
        self.bookmarks = false;
        self
    }

    /// The version the watch has reached.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The server the watch uses (after an interruption: the one it will
    /// resume at), when it has several to choose from.
    pub fn server(&self) -> Option<&str> {
        self.resumer.server()
    }

    /// The pods as currently known, sorted by namespace then name.
    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.cache.pods()
    }

    /// The next update. Errors only when the server refuses the watch for a
    /// reason that retrying cannot fix (e.g. `INVALID_ARGUMENT`).
    pub async fn next(&mut self) -> anyhow::Result<WatchUpdate> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                return Ok(update);
            }
            self.resumer.wait().await;
            let Err(status) = self.step().await else {
                continue;
            };
            self.stream = None;
            if status.code() == Code::OutOfRange {
                // Too far behind for the history: list again, now.
                self.listed = false;
                continue;
            }
            let interruption = self.resumer.interrupted(status)?;
            let place = format!("version {}", self.version);
            return Ok(WatchUpdate::Interrupted {
                note: interruption.line("watch", Some(&place)),
                reason: interruption.reason,
                retry_in: interruption.retry_in,
            });
        }
    }

    /// Opens the watch stream from the version the view reflects.
    async fn open(&mut self) -> Result<&mut Streaming<Pod>, Status> {
        let request = ListPodsRequest {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            resource_version: self.version,
            allow_bookmarks: self.bookmarks,
            ..ListPodsRequest::default()
        };
        let stream = self
            .resumer
            .client()
            .watch_pods(request)
            .await?
            .into_inner();
        Ok(self.stream.insert(stream))
    }

    /// One round trip: a list, opening the stream, or one message from it.
    async fn step(&mut self) -> Result<(), Status> {
        if !self.listed {
            let pages = Pages::new(self.namespace.as_str(), DEFAULT_PAGE_SIZE).named(&self.name);
            let (mut pods, version) = list_pages(self.resumer.client(), &pages).await?;
            pods.retain(|pod| self.selects(pod));
            let events = self.cache.replace(pods, version);
            self.version = version;
            self.listed = true;
            self.resumer.progressed();
            self.pending.push_back(WatchUpdate::Listed(events));
            // Watch at once: the sooner the watch is registered after the
            // list, the fewer changes it must find in the history.
            self.open().await?;
            return Ok(());
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self.open().await?,
        };
        match stream.message().await? {
            Some(pod) if pod.bookmark => {
                self.resumer.progressed();
                self.version = self.version.max(pod.resource_version);
                self.pending.push_back(WatchUpdate::Progressed {
                    version: self.version,
                });
                Ok(())
            }
            Some(pod) => {
                self.resumer.progressed();
                self.version = self.version.max(pod.resource_version);
                if !self.selects(&pod) {
                    return Ok(());
                }
                if let Some(event) = self.cache.observe(pod) {
                    self.pending.push_back(WatchUpdate::Changed(event));
                }
                Ok(())
            }
            None => Err(Status::unavailable("the server ended the watch")),
        }
    }

    /// Whether the watch shows `pod`. The server sends only what the watch
    /// selects; one older than the name field ignores it and sends the
    /// whole namespace, of which this keeps the named pod.
    fn selects(&self, pod: &Pod) -> bool {
        self.name.is_empty() || pod.name == self.name
    }
}
