use super::*;

#[test]
fn clients_take_turns_evenly_spaced() {
    let (clients, rate) = (4, 1000.0);
    let mut all: Vec<Duration> =
        (0..clients).flat_map(|c| (0..25).map(move |k| due(c, k, clients, rate))).collect();
    all.sort();
    assert_eq!(all.len(), 100);
    for (i, due) in all.iter().enumerate() {
        let expected = Duration::from_secs_f64(i as f64 / rate);
        let error = due.as_secs_f64() - expected.as_secs_f64();
        assert!(error.abs() < 1e-9, "send {i}: due {due:?}, expected {expected:?}");
    }
    // Client 1's requests are 4 ms apart and start 1 ms in.
    assert_eq!(due(1, 0, clients, rate), Duration::from_millis(1));
    assert_eq!(due(1, 1, clients, rate), Duration::from_millis(5));
}

#[test]
fn one_client_at_one_request_per_second() {
    assert_eq!(due(0, 0, 1, 1.0), Duration::ZERO);
    assert_eq!(due(0, 7, 1, 1.0), Duration::from_secs(7));
}
