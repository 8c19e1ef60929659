use hookrelay_tests::bench::{self, Scenario};

/// The benchmark's smoke run: a few hundred events through the whole pipeline, no
/// timing asserted, only that every delivery arrived exactly once.
#[tokio::test]
async fn a_small_benchmark_run_loses_nothing_and_duplicates_nothing() {
    let mut s = Scenario::new("smoke", 300, 2, 512);
    s.throttled = 0;
    let report = bench::run(&s, 0.0, &bench::Roles::InProcess).await;
    assert_eq!(report.expected_deliveries, 600);
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    assert!(
        report.p50_ms > 0.0 && report.p99_ms >= report.p50_ms,
        "{report:?}"
    );
}

/// The console scenario's smoke run: every console and portal page answers, on a
/// small history, and is timed.
#[tokio::test]
async fn the_console_scenario_times_the_console_and_the_portal_pages() {
    let times = hookrelay_tests::console_bench::run(300).await;
    let pages: Vec<&str> = times.iter().map(|t| t.page.as_str()).collect();
    for page in [
        "/console",
        "/portal/s/…/",
        "/portal/s/…/messages",
        "/portal/s/…/endpoints/history",
    ] {
        assert!(pages.contains(&page), "{page} in {pages:?}");
    }
    assert!(
        times.iter().all(|t| t.bytes > 0 && t.p99 >= t.p50),
        "{}",
        hookrelay_tests::console_bench::table(&times)
    );
}
