use super::*;

#[test]
fn proc_stat_is_parsed_past_a_name_with_spaces_and_parentheses() {
    // pid (comm) state ppid ... utime(14) stime(15) ... num_threads(20) ... starttime(22) vsize(23) rss(24)
    let stat = "4242 (mortar (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 123456789 2048 \
                18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
    let sample = ProcessSample::parse(stat, 1_700_000_000.0, 100.0, 4096.0, 12.0, 1024.0).unwrap();
    assert_eq!(sample.cpu_seconds, 3.0);
    assert_eq!(sample.threads, 7.0);
    assert_eq!(sample.start_time_seconds, 1_700_000_010.0);
    assert_eq!(sample.virtual_bytes, 123_456_789.0);
    assert_eq!(sample.resident_bytes, 2048.0 * 4096.0);
    assert_eq!((sample.open_fds, sample.max_fds), (12.0, 1024.0));
    assert!(ProcessSample::parse("garbage", 0.0, 100.0, 4096.0, 0.0, 0.0).is_none());
}

#[test]
fn this_process_is_read_and_rendered() {
    let sample = ProcessSample::read().expect("/proc/self on Linux");
    assert!(sample.resident_bytes > 0.0 && sample.threads >= 1.0 && sample.open_fds >= 3.0, "{sample:?}");
    let text = render_process();
    for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{text}");
    }
}

#[test]
fn latencies_are_histograms_with_help_text() {
    let recorder = builder().unwrap().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe();
        metrics::histogram!("mortar_node_kv_request_seconds", "op" => "put").record(0.002);
        metrics::histogram!("mortar_epoxy_batch_commands").record(3.0);
    });
    let text = handle.render();
    assert!(text.contains("# TYPE mortar_node_kv_request_seconds histogram"), "{text}");
    assert!(text.contains("# HELP mortar_node_kv_request_seconds Duration of a Kv request"), "{text}");
    assert!(text.contains(r#"mortar_node_kv_request_seconds_bucket{op="put",le="0.0025"} 1"#), "{text}");
    assert!(text.contains("# TYPE mortar_epoxy_batch_commands histogram"), "{text}");
}
