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
