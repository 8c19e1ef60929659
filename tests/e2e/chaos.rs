//! kill -9 of the router and the senders, again and again, while events flow: nothing
//! lost, nothing fanned out twice, duplicates at the receiver bounded by what was in
//! flight. (`cargo xtask chaos` adds broker and database restarts, which would
//! disturb the other tests running beside this one.)

use std::time::Duration;

use hookrelay_tests::chaos::{self, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_roles_at_random_loses_nothing_and_doubles_nothing() {
    let options = Options {
        events: 3000,
        senders: 2,
        kill_every: (Duration::from_millis(150), Duration::from_millis(450)),
        ..Options::default()
    };
    let figures = chaos::run(&hookrelay_tests::hookrelay_binary(), &options).await;
    eprintln!("{}", serde_json::to_string_pretty(&figures).unwrap());
    assert!(figures.router_kills + figures.sender_kills >= 6);
    assert!(figures.failed > 0 && figures.delivered > 0);
}
