//! A product's page that frames the customer portal: served on `http://localhost:PORT`
//! so that the portal on `http://127.0.0.1:...` is another site (cross-site iframe,
//! third-party rules), as it is when a product embeds it.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

/// The host page: one iframe whose address the test sets.
pub struct HostPage {
    pub origin: String,
    frame: Arc<Mutex<String>>,
}

impl HostPage {
    pub async fn serve() -> Self {
        let frame = Arc::new(Mutex::new(String::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new()
            .route("/", get(page))
            .with_state(Arc::clone(&frame));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            origin: format!("http://localhost:{port}"),
            frame,
        }
    }

    /// The next page load frames `url`.
    pub fn frame(&self, url: &str) {
        *self.frame.lock().unwrap() = url.to_owned();
    }

    pub fn url(&self) -> String {
        format!("{}/", self.origin)
    }
}

async fn page(State(frame): State<Arc<Mutex<String>>>) -> Html<String> {
    // The address is the test's own, but escaped all the same.
    let src = frame
        .lock()
        .unwrap()
        .replace('&', "&amp;")
        .replace('"', "&quot;");
    Html(format!(
        "<!DOCTYPE html><html><head><meta name=viewport content=\"width=device-width\">\
         <title>Acme settings</title></head><body style=\"margin:0\">\
         <h1 style=\"font:16px sans-serif;margin:8px\">Acme: your webhooks</h1>\
         <iframe src=\"{src}\" title=\"Webhooks\" style=\"width:100%;height:1400px;border:0\"></iframe>\
         </body></html>"
    ))
}
