//! Listing page by page, as Kubernetes clients list: a list of any size in
//! messages of a bounded size, every page consistent at the first page's
//! version, so that a watch from that version misses nothing.
//!
//! [`Pages`] is the paging itself, without I/O: it says which request comes
//! next and takes in each answer, so a caller can send the requests however
//! it likes (`list-pods` puts a deadline on each and prints each page as it
//! arrives). [`list_all`] reads a whole list with it, and lists again from
//! the start if the list expires half-way.

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
            page_size,
            next_token: None,
            version: 0,
        }
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
    let mut attempt = 1;
    loop {
        match list_once(client, namespace, page_size).await {
            Err(status) if status.code() == Code::OutOfRange && attempt < LIST_ATTEMPTS => {
                attempt += 1;
            }
            result => return result,
        }
    }
}

async fn list_once(
    client: &mut Client,
    namespace: &str,
    page_size: u32,
) -> Result<(Vec<Pod>, u64), Status> {
    let mut pages = Pages::new(namespace, page_size);
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
}
