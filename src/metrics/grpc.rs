//! The gRPC ecosystem's server metrics, with go-grpc-middleware's names and
//! labels, so that the dashboards and alert rules written for grpc-go
//! services work unchanged:
//!
//! - `grpc_server_started_total`, `grpc_server_handled_total{grpc_code}`,
//! - `grpc_server_msg_received_total`, `grpc_server_msg_sent_total`,
//! - `grpc_server_handling_seconds` (a histogram),
//!
//! each labelled `grpc_type`, `grpc_service` and `grpc_method`. As
//! go-grpc-prometheus's `InitializeMetrics` does, every method's series
//! (every code of `handled`) exist from the start, read from the compiled
//! descriptors: their number never depends on the traffic, and a call
//! looks up its method's counters once ([`GrpcMetrics::method`]), then
//! counts each message with one atomic add.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prost::Message;
use tonic::Code;

/// go-grpc-prometheus's default buckets (Prometheus' `DefBuckets`), in
/// seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The codes in the order of their numbers, spelled as grpc-go's
/// `codes.Code.String()` spells them (alert rules match these strings).
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// How grpc-go spells `code`.
pub fn code_label(code: Code) -> &'static str {
    CODES[code as usize]
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    grpc_method: String,
}

/// The counters of one method, resolved once.
#[derive(Debug)]
pub struct MethodMetrics {
    started: Counter,
    received: Counter,
    sent: Counter,
    handled: [Counter; 17],
    seconds: Histogram,
    /// Open calls of a streaming method (`None` for unary ones).
    open: Option<Gauge>,
}

impl MethodMetrics {
    /// Counts `n` messages received (a request stream is read apart from
    /// the call's end, so this is the method's, not the call's).
    pub fn received(&self, n: u64) {
        if n > 0 {
            self.received.inc_by(n);
        }
    }
}

/// Every method's metrics, by request path (`/package.Service/Method`).
#[derive(Debug, Default)]
pub struct GrpcMetrics {
    methods: HashMap<String, Arc<MethodMetrics>>,
}

impl GrpcMetrics {
    /// Registers the families in `registry` with a series for every method
    /// of every service in `descriptor_sets` (encoded `FileDescriptorSet`s).
    pub fn new(registry: &mut Registry, descriptor_sets: &[&[u8]]) -> Self {
        let started = Family::<MethodLabels, Counter>::default();
        let received = Family::<MethodLabels, Counter>::default();
        let sent = Family::<MethodLabels, Counter>::default();
        let handled = Family::<HandledLabels, Counter>::default();
        let seconds = Family::<MethodLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(BUCKETS)) as fn() -> Histogram,
        );
        let open = Family::<StreamLabels, Gauge>::default();
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            handled.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server.",
            received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server.",
            sent.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level \
             handled by the server.",
            seconds.clone(),
        );
        registry.register(
            "pod_service_open_streams",
            "Streaming calls open now, by method.",
            open.clone(),
        );
        let mut methods = HashMap::new();
        for (path, labels) in descriptor_sets.iter().flat_map(|set| methods_of(set)) {
            let handled = std::array::from_fn(|code| {
                handled.get_or_create_owned(&HandledLabels {
                    grpc_type: labels.grpc_type,
                    grpc_service: labels.grpc_service.clone(),
                    grpc_method: labels.grpc_method.clone(),
                    grpc_code: CODES[code],
                })
            });
            let open = (labels.grpc_type != "unary").then(|| {
                open.get_or_create_owned(&StreamLabels {
                    grpc_method: labels.grpc_method.clone(),
                })
            });
            let metrics = MethodMetrics {
                started: started.get_or_create_owned(&labels),
                received: received.get_or_create_owned(&labels),
                sent: sent.get_or_create_owned(&labels),
                handled,
                seconds: seconds.get_or_create_owned(&labels),
                open,
            };
            methods.insert(path, Arc::new(metrics));
        }
        GrpcMetrics { methods }
    }

    /// The metrics of the method at `path`, if it is one of the server's.
    /// (Calls of unknown methods are not counted: their paths are the
    /// callers' to choose, and series must stay bounded.)
    pub fn method(&self, path: &str) -> Option<&Arc<MethodMetrics>> {
        self.methods.get(path)
    }
}

/// The paths and labels of every method in an encoded `FileDescriptorSet`.
fn methods_of(set: &[u8]) -> Vec<(String, MethodLabels)> {
    // The sets are compiled into the binary: one that fails to decode
    // would fail every build's tests, so skipping it here is enough.
    let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
        return Vec::new();
    };
    let mut methods = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            let service_name = if package.is_empty() {
                service.name().to_owned()
            } else {
                format!("{package}.{}", service.name())
            };
            for method in &service.method {
                let grpc_type = match (method.client_streaming(), method.server_streaming()) {
                    (false, false) => "unary",
                    (true, false) => "client_stream",
                    (false, true) => "server_stream",
                    (true, true) => "bidi_stream",
                };
                methods.push((
                    format!("/{service_name}/{}", method.name()),
                    MethodLabels {
                        grpc_type,
                        grpc_service: service_name.clone(),
                        grpc_method: method.name().to_owned(),
                    },
                ));
            }
        }
    }
    methods
}

/// One call being counted: started when made, handled (with its code and
/// duration) when dropped; a call dropped before its code is known ended
/// because its client went away (`Canceled`).
#[derive(Debug)]
pub struct CallMetrics {
    method: Arc<MethodMetrics>,
    started: Instant,
    code: Option<Code>,
}

impl CallMetrics {
    /// Counts a call of `method` as started.
    pub fn start(method: Arc<MethodMetrics>) -> Self {
        method.started.inc();
        if let Some(open) = &method.open {
            open.inc();
        }
        CallMetrics {
            method,
            started: Instant::now(),
            code: None,
        }
    }

    /// The method's counters, for what the call counts elsewhere.
    pub fn method(&self) -> &Arc<MethodMetrics> {
        &self.method
    }

    /// Counts `n` messages received.
    pub fn received(&self, n: u64) {
        self.method.received(n);
    }

    /// Counts `n` messages sent.
    pub fn sent(&self, n: u64) {
        if n > 0 {
            self.method.sent.inc_by(n);
        }
    }

    /// Records how the call ended (the first code given counts).
    pub fn ended(&mut self, code: Code) {
        self.code.get_or_insert(code);
    }
}

impl Drop for CallMetrics {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(Code::Cancelled);
        self.method.handled[code as usize].inc();
        self.method
            .seconds
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(open) = &self.method.open {
            open.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_grpc_go_spells_them() {
        assert_eq!(code_label(Code::Ok), "OK");
        assert_eq!(code_label(Code::Cancelled), "Canceled");
        assert_eq!(code_label(Code::InvalidArgument), "InvalidArgument");
        assert_eq!(code_label(Code::ResourceExhausted), "ResourceExhausted");
        assert_eq!(code_label(Code::Unauthenticated), "Unauthenticated");
        for number in 0..17 {
            let code = Code::from(number);
            let upper = crate::contract::code_name(code).replace('_', "");
            assert_eq!(
                code_label(code)
                    .to_uppercase()
                    .replace("CANCELED", "CANCELLED"),
                upper
            );
        }
    }
}
