//! The AWS SDK client: made on first use, with the SDK's retries off (retrying is the
//! manager's job) and every attempt bounded by the request timeout; its HTTP goes natively
//! (rustls) or through the caller's client object (`http.rs`). Counts the requests it sends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls;

use super::http::ObjectHttp;
use super::{DynamoClientObject, DynamoStore};
use crate::error::{LockError, Result};

/// Counts the HTTP requests the SDK sends (every attempt).
#[derive(Debug)]
struct RequestCounter(Arc<AtomicU64>);

impl Intercept for RequestCounter {
  fn name(&self) -> &'static str {
    "ferrolock-request-counter"
  }
  fn read_before_transmit(
    &self,
    _ctx: &BeforeTransmitInterceptorContextRef<'_>,
    _rc: &RuntimeComponents,
    _cfg: &mut ConfigBag,
  ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    self.0.fetch_add(1, Ordering::Relaxed);
    Ok(())
  }
}

impl DynamoStore {
  pub(crate) async fn client(&self) -> Result<&Client> {
    if self.closed.load(Ordering::Acquire) {
      return Err(LockError::Closed);
    }
    self.client.get_or_try_init(|| self.connect()).await
  }

  async fn connect(&self) -> Result<Client> {
    if let Some(object) = &self.opts.client {
      return Ok(self.through_object(object));
    }
    let http = aws_smithy_http_client::Builder::new()
      .tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::Ring,
      ))
      .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
      .connect_timeout(self.opts.request_timeout.min(Duration::from_secs(2)))
      .operation_attempt_timeout(self.opts.request_timeout)
      .operation_timeout(self.opts.request_timeout)
      .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
      .http_client(http)
      .retry_config(aws_config::retry::RetryConfig::disabled())
      .timeout_config(timeouts);
    if let Some(region) = &self.opts.region {
      loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &self.opts.endpoint {
      loader = loader.endpoint_url(endpoint.clone());
    }
    if let Some(c) = &self.opts.credentials {
      loader = loader.credentials_provider(Credentials::new(
        c.access_key_id.clone(),
        c.secret_access_key.clone(),
        c.session_token.clone(),
        None,
        "ferrolock",
      ));
    }
    let shared = loader.load().await;
    let mut conf = aws_sdk_dynamodb::config::Builder::from(&shared)
      .interceptor(RequestCounter(self.requests.clone()));
    if shared.region().is_none() && shared.endpoint_url().is_some() {
      // A local server needs some region to sign with; any will do.
      conf = conf.region(Region::new("us-east-1"));
    }
    Ok(Client::from_conf(conf.build()))
  }

  /// An SDK client whose HTTP exchanges go through the caller's client object, which signs and
  /// sends them its own way: what the SDK signs here with placeholder credentials is never sent.
  fn through_object(&self, object: &DynamoClientObject) -> Client {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
      .operation_attempt_timeout(self.opts.request_timeout)
      .operation_timeout(self.opts.request_timeout)
      .build();
    let conf = aws_sdk_dynamodb::Config::builder()
      .behavior_version(BehaviorVersion::latest())
      .http_client(ObjectHttp(object.transport.clone()))
      .region(Region::new("us-east-1"))
      .endpoint_url("http://client-object.invalid")
      .credentials_provider(Credentials::new(
        "client-object",
        "unused",
        None,
        None,
        "ferrolock",
      ))
      .retry_config(aws_config::retry::RetryConfig::disabled())
      .timeout_config(timeouts)
      .interceptor(RequestCounter(self.requests.clone()));
    Client::from_conf(conf.build())
  }
}
