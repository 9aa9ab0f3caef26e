use std::collections::VecDeque;

use http_body::Body as _;

use super::*;

/// A body that yields `frames`, then ends, or (with `stall`) never ends.
struct TestBody {
    frames: VecDeque<Bytes>,
    stall: bool,
}

impl http_body::Body for TestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        match this.frames.pop_front() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None if this.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}

fn body(sizes: &[usize], stall: bool, budget: &RequestBudget) -> BudgetedBody {
    let frames = sizes.iter().map(|&n| Bytes::from(vec![0u8; n])).collect();
    BudgetedBody::new(tonic::body::Body::new(TestBody { frames, stall }), budget.clone())
}

async fn next(body: &mut BudgetedBody) -> Option<Result<Frame<Bytes>, Status>> {
    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

#[tokio::test]
async fn a_body_holds_its_bytes_until_it_is_dropped() {
    let budget = RequestBudget::new(1000, Duration::from_secs(30));
    let mut first = body(&[300, 200], false, &budget);
    assert!(next(&mut first).await.unwrap().is_ok());
    assert!(next(&mut first).await.unwrap().is_ok());
    assert!(next(&mut first).await.is_none());
    assert_eq!(budget.available(), 500);
    drop(first);
    assert_eq!(budget.available(), 1000);
}

#[tokio::test]
async fn a_body_beyond_the_budget_is_refused_and_others_still_fit() {
    let budget = RequestBudget::new(1000, Duration::from_secs(30));
    let mut big = body(&[600], false, &budget);
    assert!(next(&mut big).await.unwrap().is_ok());
    let mut second = body(&[300, 300], false, &budget);
    assert!(next(&mut second).await.unwrap().is_ok());
    let refused = next(&mut second).await.unwrap().unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    drop(second);
    assert_eq!(budget.available(), 400);
    let mut small = body(&[400], false, &budget);
    assert!(next(&mut small).await.unwrap().is_ok());
    assert_eq!(budget.available(), 0);
    drop((big, small));
    assert_eq!(budget.available(), 1000);
}

#[tokio::test]
async fn a_stalled_body_fails_at_the_deadline_and_gives_its_bytes_back() {
    let budget = RequestBudget::new(1000, Duration::from_millis(50));
    let mut stalled = body(&[700], true, &budget);
    assert!(next(&mut stalled).await.unwrap().is_ok());
    assert_eq!(budget.available(), 300);
    let timed_out = next(&mut stalled).await.unwrap().unwrap_err();
    assert_eq!(timed_out.code(), tonic::Code::DeadlineExceeded, "{timed_out:?}");
    drop(stalled);
    assert_eq!(budget.available(), 1000);
}

#[tokio::test]
async fn a_finished_body_has_no_deadline() {
    let budget = RequestBudget::new(1000, Duration::from_millis(50));
    let mut finished = body(&[10], false, &budget);
    assert!(next(&mut finished).await.unwrap().is_ok());
    assert!(next(&mut finished).await.is_none());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(next(&mut finished).await.is_none());
}

#[test]
fn only_the_peer_services_are_exempt() {
    assert!(is_budgeted("/mortar.v1.Kv/Put"));
    assert!(is_budgeted("/mortar.v1.Actors/Call"));
    assert!(is_budgeted("/mortar.v1.Admin/Join"));
    assert!(!is_budgeted("/mortar.internal.v1.Epoxy/Deliver"));
    assert!(!is_budgeted("/mortar.internal.v1.Control/Write"));
}
