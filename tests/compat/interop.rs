//! Behaviour of the clients against servers that are not ours: gRPC lets a
//! server send a stream's response headers as late as with its first
//! message (grpc-go does), and the clients must not wait for them before
//! sending what that first message answers.

use std::pin::Pin;

use futures::Stream;
use pod_service::client::{self, ClientConfig, sync::Mode};
use pod_service::contract::{
    GetLogsRequest, ListPodsRequest, ListPodsResponse, LogChunk, Pod, PodService, PodServiceServer,
    SyncAck, SyncEvent, SyncRequest, UploadLogsResponse, WatchedPod, sync_event, sync_request,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

type Events<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Acks every SyncPods op, but returns the response (and so sends its
/// headers) only once the first op has arrived.
struct LateHeaders;

#[tonic::async_trait]
impl PodService for LateHeaders {
    async fn list_pods(
        &self,
        _: Request<ListPodsRequest>,
    ) -> Result<Response<ListPodsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type WatchPodsStream = Events<WatchedPod>;
    async fn watch_pods(
        &self,
        _: Request<ListPodsRequest>,
    ) -> Result<Response<Self::WatchPodsStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn upload_logs(
        &self,
        _: Request<Streaming<LogChunk>>,
    ) -> Result<Response<UploadLogsResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type GetLogsStream = Events<LogChunk>;
    async fn get_logs(
        &self,
        _: Request<GetLogsRequest>,
    ) -> Result<Response<Self::GetLogsStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type SyncPodsStream = Events<SyncEvent>;
    async fn sync_pods(
        &self,
        request: Request<Streaming<SyncRequest>>,
    ) -> Result<Response<Self::SyncPodsStream>, Status> {
        let mut ops = request.into_inner();
        let first = ops
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no op"))?;
        let acks =
            tokio_stream::once(Ok(first))
                .chain(ops)
                .map(|op: Result<SyncRequest, Status>| {
                    let op = op?;
                    let Some(sync_request::Op::Apply(pod)) = op.op else {
                        return Err(Status::unimplemented("only apply in this test"));
                    };
                    Ok(SyncEvent {
                        event: Some(sync_event::Event::Ack(SyncAck {
                            id: op.id,
                            code: 0,
                            message: String::new(),
                            pod: Some(Pod {
                                resource_version: op.id + 100,
                                ..pod
                            }),
                        })),
                    })
                });
        Ok(Response::new(Box::pin(acks)))
    }
}

#[tokio::test]
async fn a_sync_session_does_not_wait_for_headers_before_its_first_op() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PodServiceServer::new(LateHeaders))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let mut client = client::connect(&ClientConfig::new(format!("http://{addr}")))
        .await
        .unwrap();
    let input = "apply default/web status=Running replicas=2\n".as_bytes();
    let mut output = Vec::new();
    let session = client::sync::run_session(&mut client, input, &mut output, Mode::Script, |_| {});
    // Before the fix this waited for the headers forever.
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), session)
        .await
        .expect("the session hung waiting for the server's headers")
        .unwrap();
    let output = String::from_utf8(output).unwrap();
    assert_eq!(report.ops, 1, "{output}");
    assert!(output.contains("ack 1 OK default/web"), "{output}");
}
