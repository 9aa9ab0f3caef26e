use super::*;

/// Checks that every tag is closed in order (a tiny XML well-formedness check) and returns the
/// element names in order.
fn elements(svg: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut names = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("tag closes") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            let name = tag.split_whitespace().next().unwrap().trim_end_matches('/').to_string();
            names.push(name.clone());
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    names
}

fn bucket(ok: u64, latency: Option<f64>) -> Bucket {
    Bucket {
        ok,
        fail: 0,
        info: 1,
        p50_ms: latency,
        p99_ms: latency.map(|l| l * 2.0),
        max_ms: latency.map(|l| l * 3.0),
    }
}

#[test]
fn draws_windows_series_and_heal() {
    let buckets =
        vec![bucket(100, Some(2.0)), bucket(50, None), bucket(80, Some(900.0)), bucket(90, Some(3.0))];
    let faults = [
        FaultInterval {
            kind: NemesisKind::Kill,
            text: "kill n1 & <n2>".into(),
            start_ns: 1_000_000_000,
            end_ns: 2_500_000_000,
        },
        FaultInterval {
            kind: NemesisKind::Partition,
            text: "partition".into(),
            start_ns: 2_000_000_000,
            end_ns: 3_000_000_000,
        },
    ];
    let svg =
        render(&Plot { title: "seed 7 <5 nodes>", buckets: &buckets, faults: &faults, heal_s: Some(3.0) });
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    let names = elements(&svg);
    assert_eq!(names[0], "svg");
    assert_eq!(svg.matches(r#"<rect class="fault""#).count(), 2);
    assert_eq!(svg.matches(r#"<line class="heal""#).count(), 1);
    // The latency gap at second 1 splits the p50 series in two; throughput is continuous.
    assert_eq!(svg.matches(r#"class="p50""#).count(), 2);
    assert_eq!(svg.matches(r#"class="ok""#).count(), 1);
    assert!(svg.contains("seed 7 &lt;5 nodes&gt;"));
    assert!(svg.contains("kill n1 &amp; &lt;n2&gt;"));
    // Every coordinate is finite.
    for bad in ["NaN", "\"inf\"", "\"-inf\"", "inf,", ",inf", ",-inf", " inf"] {
        assert!(!svg.contains(bad), "{bad} in {svg}");
    }
}

#[test]
fn empty_run_still_draws() {
    let svg = render(&Plot { title: "empty", buckets: &[], faults: &[], heal_s: None });
    elements(&svg);
    assert!(!svg.contains("NaN"));
}

#[test]
fn ticks_are_round() {
    assert_eq!(tick_step(100.0, 10.0), 10.0);
    assert_eq!(tick_step(130.0, 10.0), 20.0);
    assert_eq!(tick_step(7.0, 4.0), 2.0);
}
