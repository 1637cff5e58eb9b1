//! Running one test body on every store: `on_every_store!` runs each listed
//! `async fn(Backend)` on the memory, durable and etcd stores, and
//! `on_every_log_store!` twice more with the logs on NATS JetStream, in
//! plaintext and over TLS with a client certificate.

/// Runs each listed test, an `async fn(Backend)`, once on each store.
#[allow(unused_macros)]
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::Backend::Memory).await
                }
            )*
        }
        mod durable {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::Backend::Durable).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::Backend::Etcd).await
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_store;

/// Runs each listed test, an `async fn(Backend)`, once on each store and
/// twice more with the logs on NATS JetStream (plaintext, and TLS).
#[allow(unused_macros)]
macro_rules! on_every_log_store {
    ($($test:ident),* $(,)?) => {
        common::on_every_store!($($test),*);
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::Backend::Nats).await
                }
            )*
        }
        mod nats_tls {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::common::Backend::NatsTls).await
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_log_store;
