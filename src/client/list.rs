//! Listing page by page, as Kubernetes clients list: a list of any size in
//! messages of a bounded size, every page consistent at the first page's
//! version, so that a watch from that version misses nothing.
//!
//! [`Pages`] is the paging itself, without I/O: it says which request comes
//! next and takes in each answer, so a caller can send the requests however
//! it likes (`list-pods` puts a deadline on each and prints each page as it
//! arrives). [`list_all`] reads a whole list with it, and lists again from
//! the start if the list expires half-way; [`read_pod`] reads one pod by
//! name, which costs the server one pod whatever its namespace holds.

use tonic::{Code, Status};

use super::connect::Client;
use crate::contract::{ListPodsRequest, ListPodsResponse, Pod};

/// The page size clients ask for unless told otherwise (kubectl's).
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// How many times [`list_all`] starts again when its list expires.
const LIST_ATTEMPTS: usize = 5;

/// The paging of one list.
#[derive(Debug, Clone)]
pub struct Pages {
    namespace: String,
    /// "" = every pod of the namespace.
    name: String,
    page_size: u32,
    /// `None` before the first page; then the token of the next page,
    /// empty after the last.
    next_token: Option<String>,
    /// The version of the first page: that of the whole list.
    version: u64,
}

impl Pages {
    /// The paging of a list of `namespace` ("" = all) in pages of at most
    /// `page_size` pods (0: the whole list in one message).
    pub fn new(namespace: impl Into<String>, page_size: u32) -> Self {
        Pages {
            namespace: namespace.into(),
            name: String::new(),
            page_size,
            next_token: None,
            version: 0,
        }
    }

    /// Only the pod of this name in the namespace: a list of at most one
    /// pod, which the server answers in one page.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The request for the next page; `None` once the last page is in.
    pub fn next_request(&self) -> Option<ListPodsRequest> {
        let continue_token = match &self.next_token {
            None => String::new(),
            Some(token) if token.is_empty() => return None,
            Some(token) => token.clone(),
        };
        Some(ListPodsRequest {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            limit: self.page_size,
            continue_token,
            ..ListPodsRequest::default()
        })
    }

    /// Takes in the answer to [`next_request`](Pages::next_request).
    pub fn received(&mut self, page: &ListPodsResponse) {
        if self.next_token.is_none() {
            self.version = page.resource_version;
        }
        self.next_token = Some(page.continue_token.clone());
    }

    /// The version the list reflects (known from the first page on).
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// Every pod of `namespace` ("" = all) and the version they reflect, read
/// in pages of `page_size`. A list that expires before its last page (the
/// history moved past its version) is read again from the start.
pub async fn list_all(
    client: &mut Client,
    namespace: &str,
    page_size: u32,
) -> Result<(Vec<Pod>, u64), Status> {
    list_pages(client, &Pages::new(namespace, page_size)).await
}

/// The pod `namespace/name` as the server has it now (`None`: there is no
/// such pod), and the version of that answer: one `ListPods` with `name`.
/// A server older than the field ignores it and lists the namespace,
/// which this reads through, so the answer is the same, only slower.
pub async fn read_pod(
    client: &mut Client,
    namespace: &str,
    name: &str,
) -> Result<(Option<Pod>, u64), Status> {
    let pages = Pages::new(namespace, DEFAULT_PAGE_SIZE).named(name);
    let (pods, version) = list_pages(client, &pages).await?;
    Ok((pods.into_iter().find(|pod| pod.name == name), version))
}

/// Every page of the list `pages` begins, started again if it expires.
pub(super) async fn list_pages(
    client: &mut Client,
    pages: &Pages,
) -> Result<(Vec<Pod>, u64), Status> {
    let mut attempt = 1;
    loop {
        match list_once(client, pages.clone()).await {
            Err(status) if status.code() == Code::OutOfRange && attempt < LIST_ATTEMPTS => {
                attempt += 1;
            }
            result => return result,
        }
    }
}

async fn list_once(client: &mut Client, mut pages: Pages) -> Result<(Vec<Pod>, u64), Status> {
    let mut pods = Vec::new();
    while let Some(request) = pages.next_request() {
        let page = client.list_pods(request).await?.into_inner();
        pages.received(&page);
        pods.extend(page.pods);
    }
    Ok((pods, pages.version()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_tokens_and_end_on_an_empty_one() {
        let mut pages = Pages::new("production", 2);
        let first = pages.next_request().unwrap();
        assert_eq!((first.limit, first.continue_token.as_str()), (2, ""));
        assert_eq!(first.namespace, "production");
        pages.received(&ListPodsResponse {
            resource_version: 7,
            continue_token: "next".into(),
            ..ListPodsResponse::default()
        });
        assert_eq!(pages.next_request().unwrap().continue_token, "next");
        pages.received(&ListPodsResponse {
            resource_version: 7,
            ..ListPodsResponse::default()
        });
        assert!(pages.next_request().is_none());
        assert_eq!(pages.version(), 7);
    }

    #[test]
    fn a_named_list_asks_for_its_pod_in_every_request() {
        let mut pages = Pages::new("production", 500).named("web");
        let first = pages.next_request().unwrap();
        assert_eq!(
            (first.namespace.as_str(), first.name.as_str()),
            ("production", "web")
        );
        pages.received(&ListPodsResponse {
            resource_version: 7,
            ..ListPodsResponse::default()
        });
        assert!(pages.next_request().is_none(), "one page, no token");
    }
}
