//! What a server counts, for Prometheus: one [`Metrics`] per server,
//! holding its own registry (not a global one, so that several servers in
//! one process, as in the tests, keep their counts apart), and encoded on
//! demand in the Prometheus text format 0.0.4 or in OpenMetrics.
//!
//! - [`grpc`]: the gRPC ecosystem's `grpc_server_*` families, counted for
//!   every call of every service by the server's call layer;
//! - [`service`]: the PodService's own `pod_service_*` figures;
//! - [`store`]: the stores' figures, counted by the backends;
//! - [`process`]: the process' CPU, memory, descriptors and start time,
//!   and `pod_service_build_info`.
//!
//! Nothing here depends on the server or the store: both count into it.
//! No label takes a value from a request (a pod, a namespace, a peer), so
//! the number of series is fixed by the code, not by the traffic.

pub mod grpc;
pub mod process;
pub mod service;
pub mod store;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use grpc::{CallMetrics, GrpcMetrics, MethodMetrics};
pub use service::{Figures, OpKind, ServiceMetrics, WatchEnded, WatchEvents};
pub use store::{FeedRestart, StoreMetrics};

/// The formats a scrape may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4: the default.
    Prometheus,
    /// OpenMetrics 1.0.0 text, for a scraper whose `Accept` asks for it.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn accepted(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// A server's metrics: the registry and every family in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Every call, by method.
    pub grpc: GrpcMetrics,
    /// The service's own figures.
    pub service: Arc<ServiceMetrics>,
    /// The stores' figures (a clone goes to the store's configuration).
    pub store: StoreMetrics,
}

impl Metrics {
    /// Every family, with a series for each method of the services in
    /// `descriptor_sets` (encoded `FileDescriptorSet`s).
    pub fn new(descriptor_sets: &[&[u8]]) -> Self {
        let mut registry = Registry::default();
        let grpc = GrpcMetrics::new(&mut registry, descriptor_sets);
        let service = Arc::new(ServiceMetrics::new(&mut registry));
        let store = StoreMetrics::new(&mut registry);
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "pod_service_build_info",
            "A constant 1, labelled with the server's version.",
            build,
        );
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            registry,
            grpc,
            service,
            store,
        }
    }

    /// Everything, in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, nor can the metrics here: every
        // one encodes to text.
        let _ = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &self.registry)
            }
        };
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked() {
        assert_eq!(Format::accepted(None), Format::Prometheus);
        assert_eq!(Format::accepted(Some("text/plain")), Format::Prometheus);
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert_eq!(Format::accepted(Some(prometheus)), Format::OpenMetrics);
    }
}
