//! A client of several endpoints against fake nodes: gRPC servers that answer every request with
//! one status and count the requests they get.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;

use super::*;

/// A node that answers every `mortar.v1.Actors` request with the status `answer` makes.
#[derive(Clone)]
struct FakeNode {
    answer: fn() -> Status,
    requests: Arc<AtomicUsize>,
}

impl NamedService for FakeNode {
    const NAME: &'static str = "mortar.v1.Actors";
}

impl tower::Service<http::Request<Body>> for FakeNode {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        self.requests.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok((self.answer)().into_http()))
    }
}

/// A running fake node: its address and how many requests it got.
struct Fake {
    address: String,
    requests: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start(answer: fn() -> Status) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let node = FakeNode { answer, requests: requests.clone() };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(node)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        Fake { address, requests, server }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn not_applied() -> Status {
    Status::from(CallError::Retry("the actor moved".into()))
}

fn outcome_unknown() -> Status {
    Status::unavailable("no quorum")
}

fn overloaded() -> Status {
    Status::resource_exhausted("queue full")
}

fn not_found() -> Status {
    Status::not_found("no actor type bankAccount")
}

/// A loopback address nobody listens on.
fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    address.to_string()
}

async fn call(client: &Client) -> Result<String, CallError> {
    client.call_json("bankAccount", "acc-1", "deposit", r#"{"amount": 5}"#).await
}

#[tokio::test]
async fn a_call_not_applied_moves_on_to_the_next_endpoint_which_calls_then_go_to_first() {
    let moved = Fake::start(not_applied).await;
    let answers = Fake::start(not_found).await;
    let client = Client::connect(&format!("{},{}", moved.address, answers.address)).await.unwrap();
    let e = call(&client).await.unwrap_err();
    assert!(matches!(&e, CallError::NotFound(m) if m.contains("bankAccount")), "{e:?}");
    assert_eq!((moved.requests(), answers.requests()), (1, 1));
    // Clones share the endpoint: the one that answered.
    let e = call(&client.clone()).await.unwrap_err();
    assert!(matches!(e, CallError::NotFound(_)), "{e:?}");
    assert_eq!((moved.requests(), answers.requests()), (1, 2));
}

#[tokio::test]
async fn a_call_of_unknown_outcome_or_overloaded_is_not_sent_again() {
    let answers = Fake::start(not_found).await;
    for (answer, expect) in [(outcome_unknown as fn() -> Status, "Unavailable"), (overloaded, "Overloaded")] {
        let first = Fake::start(answer).await;
        let client = Client::connect_any(&[&first.address, &answers.address]).await.unwrap();
        let e = call(&client).await.unwrap_err();
        assert!(format!("{e:?}").starts_with(expect), "{e:?}");
        assert_eq!((first.requests(), answers.requests()), (1, 0), "{expect}: sent once, to the first");
        let sent = client.send_json("bankAccount", "acc-1", "audit", "{}", false, None).await.unwrap_err();
        assert!(format!("{sent:?}").starts_with(expect), "{sent:?}");
        assert_eq!((first.requests(), answers.requests()), (2, 0), "{expect}: a send neither");
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_skipped_at_connect_and_at_call_time() {
    let answers = Fake::start(not_found).await;
    let dead = dead_address();
    // At connect: the first that answers is the current endpoint.
    let client = Client::connect_any(&[dead.as_str(), &answers.address]).await.unwrap();
    assert!(matches!(call(&client).await, Err(CallError::NotFound(_))));
    assert_eq!(answers.requests(), 1);

    // At call time: the current endpoint stopped answering since.
    let client = Client::connect_any(&[&answers.address, &dead]).await.unwrap();
    client.rotate();
    assert!(matches!(call(&client).await, Err(CallError::NotFound(_))));
    assert_eq!(answers.requests(), 2);
    let (channel, token) = client.endpoint_channel().unwrap();
    assert!(token.is_none());
    let mut raw = ActorsClient::new(channel);
    let status = raw.call(ActorCallRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    assert_eq!(answers.requests(), 3, "the client kept to the endpoint that answered");

    // Alone, an unreachable endpoint is a not-applied error that names it.
    let channel = Endpoint::from_shared(format!("http://{dead}")).unwrap().connect_lazy();
    let node = RemoteNode { address: dead.clone(), channel };
    let endpoints = Endpoints::new(vec![node], None, 0);
    let alone =
        Client { transport: Transport::Remote(Arc::new(endpoints)), timeout: CLIENT_CALL_TIMEOUT_DEFAULT };
    let e = call(&alone).await.unwrap_err();
    assert!(
        matches!(&e, CallError::Retry(m) if m.contains(&dead) && m.contains("nothing was sent")),
        "{e:?}"
    );
}

#[tokio::test]
async fn connecting_needs_one_endpoint_that_answers() {
    let (a, b) = (dead_address(), dead_address());
    let e = Client::connect(&format!("{a}, {b}")).await.err().unwrap();
    assert!(matches!(&e, CallError::Retry(m) if m.contains(&a) && m.contains(&b)), "{e:?}");
    let e = Client::connect_any::<&str>(&[]).await.err().unwrap();
    assert!(matches!(e, CallError::InvalidArgument(_)), "{e:?}");
    let e = Client::connect("127.0.0.1:7100,not an address").await.err().unwrap();
    assert!(matches!(&e, CallError::InvalidArgument(m) if m.contains("not an address")), "{e:?}");
}

#[tokio::test]
async fn rotating_goes_round_the_endpoints() {
    let fakes = [Fake::start(not_found).await, Fake::start(not_found).await, Fake::start(not_found).await];
    let addresses: Vec<&str> = fakes.iter().map(|f| f.address.as_str()).collect();
    let client = Client::connect_any(&addresses).await.unwrap();
    assert_eq!(client.endpoint_count(), 3);
    for _ in 0..4 {
        let _ = call(&client).await;
        client.rotate();
    }
    let requests: Vec<usize> = fakes.iter().map(Fake::requests).collect();
    assert_eq!(requests, [2, 1, 1], "calls went to 1, 2, 3, then 1 again");
}
