//! The caller's DynamoDB client object as the AWS SDK's HTTP client: the transport seam of the
//! DynamoDB store. The SDK builds, signs and parses every request as usual; only the HTTP
//! exchange goes through the object, by way of the backend-neutral `CommandTransport`.

use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
  HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;

use crate::transport::{CommandTransport, Reply, CLIENT_TIMEOUT};

/// A caller's DynamoDB client object (aws-sdk v2 `DynamoDB`, `@aws-sdk/client-dynamodb` v3), as a
/// store option. The SDK builds, signs and parses every request as usual; only the HTTP exchange
/// goes through the object: `call([operation, body])` with the JSON body of the wire protocol
/// (e.g. `["GetItem", "{\"TableName\":...}"]`) answers `{"status": 200, "body": "<JSON>"}`, or an
/// error status with `{"__type": code, "message": ...}` as the body, the way DynamoDB answers.
#[derive(Clone)]
pub struct DynamoClientObject {
  pub transport: Arc<dyn CommandTransport>,
}

impl fmt::Debug for DynamoClientObject {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("DynamoClientObject").finish_non_exhaustive()
  }
}

/// The SDK's HTTP client, replaced by the client object.
#[derive(Clone)]
pub(crate) struct ObjectHttp(pub(crate) Arc<dyn CommandTransport>);

impl fmt::Debug for ObjectHttp {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("ObjectHttp")
  }
}

fn failed(message: String) -> ConnectorError {
  ConnectorError::other(message.into(), None)
}

impl HttpConnector for ObjectHttp {
  fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
    // `X-Amz-Target: DynamoDB_20120810.GetItem` names the operation.
    let operation = request
      .headers()
      .get("x-amz-target")
      .and_then(|t| t.rsplit('.').next())
      .map(str::to_owned);
    let body = request
      .body()
      .bytes()
      .map(|b| String::from_utf8_lossy(b).into_owned());
    let transport = self.0.clone();
    HttpConnectorFuture::new(async move {
      let (Some(operation), Some(body)) = (operation, body) else {
        return Err(failed("not a DynamoDB JSON request".into()));
      };
      let reply = tokio::time::timeout(CLIENT_TIMEOUT, transport.call(vec![operation, body]))
        .await
        .map_err(|_| ConnectorError::timeout("the client object did not answer in time".into()))?
        .map_err(failed)?;
      let Reply::Bytes(reply) = reply else {
        return Err(failed("the client object gave no answer".into()));
      };
      let reply: serde_json::Value = serde_json::from_slice(&reply)
        .map_err(|_| failed("the client object gave no JSON answer".into()))?;
      let status = reply
        .get("status")
        .and_then(serde_json::Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::try_from(s).ok())
        .ok_or_else(|| failed("the client object gave no status".into()))?;
      let body = reply
        .get("body")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("{}")
        .to_owned();
      let mut response = Response::new(status, SdkBody::from(body));
      response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
      Ok(response)
    })
  }
}

impl HttpClient for ObjectHttp {
  fn http_connector(
    &self,
    _settings: &HttpConnectorSettings,
    _components: &RuntimeComponents,
  ) -> SharedHttpConnector {
    SharedHttpConnector::new(self.clone())
  }
}
