use super::*;

fn words(text: &str) -> Vec<String> {
    text.split(',').map(str::to_string).collect()
}

fn default_matrix() -> DelayMatrix {
    DelayMatrix::parse(&words("a-b=30,a-c=70,b-c=90")).unwrap()
}

#[test]
fn delays_parse_into_a_symmetric_matrix() {
    let matrix = DelayMatrix::parse(&words("c-b=90, a-c=70,b-a=30")).unwrap();
    assert_eq!(matrix, default_matrix());
    for (x, y, ms) in [(0, 1, 30), (0, 2, 70), (1, 2, 90)] {
        assert_eq!(matrix.one_way_ms(x, y), ms);
        assert_eq!(matrix.one_way_ms(y, x), ms);
        assert_eq!(matrix.one_way(x, y), Duration::from_millis(ms));
    }
    assert_eq!((0..REGIONS).map(|r| matrix.one_way_ms(r, r)).collect::<Vec<_>>(), [0, 0, 0]);
    let zero = DelayMatrix::parse(&words("a-b=0,a-c=0,b-c=0")).unwrap();
    assert_eq!(zero.one_way_ms(1, 2), 0);
}

#[test]
fn bad_delays_say_what_is_wrong() {
    let error = |text: &str| DelayMatrix::parse(&words(text)).unwrap_err();
    assert_eq!(error("a-b=30,a-c=70"), "--delays has no delay for b-c; give every pair");
    assert!(error("a-b=30,b-a=31,a-c=70,b-c=90").contains("repeats a pair"), "{}", error("a-b=30,b-a=31"));
    assert!(error("a-a=30").contains("pairs a region with itself"));
    assert!(error("a-d=30").contains("\"d\" is not a region; the regions are a, b, c"));
    assert!(error("ab=30").contains("does not name a pair x-y"));
    assert!(error("a-b:30").contains("has no `=`"));
    assert!(error("a-b=1.5").contains("no whole number of milliseconds"));
    assert!(error("a-b=5001,a-c=1,b-c=1").contains("longer than 5000 ms"));
    assert!(error("a-b=-3").contains("no whole number"));
}

#[test]
fn the_center_has_the_smallest_sum_of_delays() {
    assert_eq!(default_matrix().center(), 0);
    assert_eq!(DelayMatrix::parse(&words("a-b=50,a-c=70,b-c=10")).unwrap().center(), 1);
    assert_eq!(
        DelayMatrix::parse(&words("a-b=50,a-c=10,b-c=50")).unwrap().center(),
        0,
        "ties go to the first"
    );
    assert_eq!(region_index("c"), Ok(2));
    assert!(region_index("x").is_err());
}

#[test]
fn the_matrix_prints_as_a_table() {
    assert_eq!(
        default_matrix().table().markdown(),
        "| one-way ms | a   | b   | c   |\n\
         | ---------- | --- | --- | --- |\n\
         | a          | -   | 30  | 70  |\n\
         | b          | 30  | -   | 90  |\n\
         | c          | 70  | 90  | -   |"
    );
    let links = default_matrix().links();
    assert_eq!(links.len(), 3);
    assert_eq!(links[2], Link { regions: ["b".to_string(), "c".to_string()], one_way_ms: 90 });
}

/// Round trips of the default matrix plus a little proxy overhead, asymmetric on purpose.
fn rtts() -> [[f64; REGIONS]; REGIONS] {
    [[0.0, 61.0, 141.0], [60.5, 0.0, 181.0], [140.5, 180.5, 0.0]]
}

#[test]
fn three_replicas_have_a_fast_quorum_of_two() {
    assert_eq!(fast_quorum(), 2);
}

#[test]
fn mortar_floor_is_the_round_trip_to_the_nearest_fast_quorum() {
    assert_eq!(fast_quorum_rtt(&rtts(), 0, 2), (1, 61.0));
    assert_eq!(fast_quorum_rtt(&rtts(), 1, 2), (0, 60.5));
    assert_eq!(fast_quorum_rtt(&rtts(), 2, 2), (0, 140.5));
    // A fast quorum of all three waits for the farther one.
    assert_eq!(fast_quorum_rtt(&rtts(), 2, 3), (0, 180.5));
}

#[test]
fn etcd_floor_goes_through_the_leader_and_its_nearest_follower() {
    let rtt = rtts();
    // Leader a: its nearest follower is b (61 ms).
    assert_eq!(etcd_floor_ms(&rtt, 0, 0, 2.0), 61.0 + 2.0);
    assert_eq!(etcd_floor_ms(&rtt, 1, 0, 2.0), 60.5 + 61.0 + 2.0);
    assert_eq!(etcd_floor_ms(&rtt, 2, 0, 2.0), 140.5 + 61.0 + 2.0);
    // Leader c: its nearest follower is a.
    assert_eq!(etcd_floor_ms(&rtt, 1, 2, 0.0), 181.0 + 140.5);
}

#[test]
fn median_takes_the_middle_sample() {
    let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
    assert_eq!(median_ms(&ms(&[5, 1, 3])), 3.0);
    assert_eq!(median_ms(&ms(&[4, 1, 3, 2])), 3.0);
    assert_eq!(median_ms(&ms(&[7])), 7.0);
}

fn result(target: Target, ops_per_sec: f64, p50_ms: f64) -> KvBenchResult {
    KvBenchResult {
        target: target.name().to_string(),
        mode: "closed".to_string(),
        clients: 4,
        rate: None,
        conflict: 0.0,
        reads: 0.0,
        value_size: 100,
        ops: (ops_per_sec * 10.0) as u64,
        errors: 0,
        missed: 0,
        seconds: 10.0,
        ops_per_sec,
        p50_ms,
        p90_ms: p50_ms * 1.1,
        p99_ms: p50_ms * 1.5,
        p999_ms: p50_ms * 2.0,
        max_ms: p50_ms * 3.0,
        first_error: None,
    }
}

fn report() -> WanReport {
    let rtt = rtts();
    let fsync = [2.0, 2.5, 3.0];
    let regions = (0..REGIONS)
        .map(|r| {
            let (nearest, floor) = fast_quorum_rtt(&rtt, r, 2);
            RegionReport {
                region: REGION_NAMES[r].to_string(),
                rtt_ms: (0..REGIONS)
                    .filter(|&o| o != r)
                    .map(|o| (REGION_NAMES[o].to_string(), rtt[r][o]))
                    .collect(),
                fsync_ms: fsync[r],
                nearest: REGION_NAMES[nearest].to_string(),
                mortar_floor_ms: floor + fsync[r],
                etcd_floor_ms: Some(etcd_floor_ms(&rtt, r, 0, fsync[r])),
                mortar: Some(result(Target::Mortar, 4.0 * 1000.0 / (floor + 5.0), floor + 5.0)),
                etcd: Some(result(Target::Etcd, 4.0 * 1000.0 / 200.0, 200.0)),
                mortar_server: Some(ServerSide {
                    syncs_per_sec: 180.4,
                    sync_ms_mean: 1.234,
                    slow_path_fraction: Some(0.0),
                }),
                etcd_server: Some(ServerSide {
                    syncs_per_sec: 60.0,
                    sync_ms_mean: 2.5,
                    slow_path_fraction: None,
                }),
            }
        })
        .collect();
    WanReport {
        delays: default_matrix().links(),
        etcd_version: Some("etcd 3.5.16".to_string()),
        etcd_leader: Some("a".to_string()),
        fast_quorum: 2,
        clients_per_region: 4,
        duration: 10,
        warmup: 2,
        value_size: 100,
        regions,
        matrix: Some(default_matrix()),
    }
}

#[test]
fn the_table_shows_floors_and_both_systems_per_region() {
    let table = results_table(&report());
    assert_eq!(
        table.header,
        [
            "region",
            "nearest",
            "RTT ms",
            "fsync ms",
            "mortar floor ms",
            "mortar ops/s",
            "mortar p50 ms",
            "mortar p99 ms",
            "etcd floor ms",
            "etcd ops/s",
            "etcd p50 ms",
            "etcd p99 ms",
            "p50 etcd÷mortar",
            "p99 etcd÷mortar",
            "errors"
        ]
    );
    assert_eq!(
        table.rows[0],
        [
            "a (etcd leader)",
            "b",
            "61.0",
            "2.00",
            "63.0",
            "61",
            "66.0",
            "99.0",
            "63.0",
            "20",
            "200.0",
            "300.0",
            "3.03×",
            "3.03×",
            "0/0"
        ]
    );
    assert_eq!(table.rows[2][0], "c");
    assert_eq!(table.rows[2][1], "a");
    assert_eq!(table.rows[2][4], "143.5");
    assert_eq!(table.rows[2][8], "204.5");
}

#[test]
fn the_table_leaves_out_a_system_that_did_not_run() {
    let mut report = report();
    for region in &mut report.regions {
        region.etcd = None;
        region.etcd_floor_ms = None;
        region.etcd_server = None;
    }
    report.etcd_leader = None;
    let table = results_table(&report);
    assert_eq!(table.header.len(), 9);
    assert_eq!(table.rows[0][0], "a");
    assert_eq!(table.rows[0][8], "0");
    let servers = servers_table(&report);
    assert_eq!(servers.header, ["region", "mortar syncs/s", "mortar sync ms", "mortar slow path"]);
}

#[test]
fn server_side_figures_come_from_the_counters_change() {
    let change =
        Sample { syncs: 200.0, sync_seconds: 0.3, fast_path: 90.0, slow_path: 10.0, ..Sample::default() };
    let mortar = ServerSide::new(Target::Mortar, change, 10.0);
    assert_eq!(mortar.syncs_per_sec, 20.0);
    assert!((mortar.sync_ms_mean - 1.5).abs() < 1e-9, "{mortar:?}");
    assert_eq!(mortar.slow_path_fraction, Some(0.1));
    let etcd = ServerSide::new(Target::Etcd, Sample { syncs: 0.0, ..Sample::default() }, 0.0);
    assert_eq!(etcd, ServerSide { syncs_per_sec: 0.0, sync_ms_mean: 0.0, slow_path_fraction: None });
}

#[test]
fn the_servers_table_shows_syncs_and_the_slow_path() {
    let table = servers_table(&report());
    assert_eq!(
        table.header,
        ["region", "mortar syncs/s", "mortar sync ms", "mortar slow path", "etcd syncs/s", "etcd sync ms"]
    );
    assert_eq!(table.rows[1], ["b", "180", "1.23", "0%", "60", "2.50"]);
}

#[test]
fn the_json_report_names_delays_leader_and_regions() {
    let json: serde_json::Value = serde_json::to_value(report()).unwrap();
    assert_eq!(json["delays"][0], serde_json::json!({"regions": ["a", "b"], "one_way_ms": 30}));
    assert_eq!(json["etcd_leader"], "a");
    assert_eq!(json["regions"][1]["nearest"], "a");
    assert_eq!(json["regions"][1]["rtt_ms"]["c"], 181.0);
    assert_eq!(json["regions"][2]["mortar"]["target"], "mortar");
    assert!(json.get("matrix").is_none());
}

#[test]
fn every_region_proxies_every_port_towards_every_region() {
    let matrix = default_matrix();
    let routes = wan_net::routes(2, |x, y| matrix.one_way(x, y));
    assert_eq!(routes.len(), REGIONS * wan_net::PROXIED_PORTS.len());
    let to_a = routes.iter().find(|r| r.listen.to_string() == "10.78.0.30:7000").unwrap();
    assert_eq!(to_a.target.to_string(), "10.78.0.10:7000");
    assert_eq!(to_a.delay, Duration::from_millis(70));
    let to_self = routes.iter().find(|r| r.listen.to_string() == "10.78.0.32:2380").unwrap();
    assert_eq!(to_self.target.to_string(), "10.78.0.12:2380");
    assert_eq!(to_self.delay, Duration::ZERO);
    assert_eq!(wan_net::namespace(1), "mwan-b");
}
