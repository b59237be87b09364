//! The OpenAPI document, generated from the handlers' annotations, plus the answers every
//! operation of a kind shares (added here once, from the extractors' rules).

use crate::app::REQUEST_BODY_BYTES_MAX;
use crate::extract::IDEMPOTENCY_KEY_HEADER;
use minipay_core::request::PAGE_LIMIT_MAX;
use minipay_services::error::{ErrorBody, ErrorCode};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, PathItem, Ref, RefOr, Required, Response};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "minipay"),
    components(schemas(ErrorBody)),
    modifiers(&Security, &Description),
    tags((name = "users"), (name = "accounts"), (name = "bank accounts"), (name = "transfers"), (name = "settlements"), (name = "notifications"),
         (name = "payments", description = "A user's payments to businesses"),
         (name = "admin", description = "Needs the admin token"),
         (name = "businesses", description = "Onboarding businesses and their keys; needs the admin token"),
         (name = "business API", description = "Needs a business's API key"), (name = "operations"))
)]
pub struct ApiDoc;

/// A user's access token (`POST /v1/auth/token`).
const USER_SCHEME: &str = "bearer";
/// The configured admin token.
const ADMIN_SCHEME: &str = "admin";
/// A business's API key (`/v1/biz/*`).
const BUSINESS_SCHEME: &str = "api_key";

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme(USER_SCHEME, bearer());
        components.add_security_scheme(ADMIN_SCHEME, bearer());
        components.add_security_scheme(BUSINESS_SCHEME, bearer());
    }
}

/// The contract's general rules, as `info.description`.
struct Description;

impl Modify for Description {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let kib = REQUEST_BODY_BYTES_MAX / 1024;
        openapi.info.description = Some(format!(
            "Wallet API: users, accounts on a double-entry ledger, charges under a daily limit, \
             transfers with auto-charge, split bills, savings and history. Business API \
             (`/v1/biz/*`): businesses authenticated by their API key.\n\n\
             - **Errors** are `{{\"error\": {{\"code\", \"message\"}}}}` (`ErrorBody`): `code` is stable, \
             `message` is for people.\n\
             - **Request bodies** are one JSON object sent as `application/json` (otherwise `415`). \
             An array or any other JSON value, malformed JSON, a wrong type, a value out of its \
             bounds, or a field this document does not list is `400 validation_failed`: unknown \
             fields are rejected, never ignored. A body over {kib} KiB is `413`.\n\
             - **Ids**: an id that belongs to another user answers `404 not_found`, exactly like one \
             that does not exist (or is not a UUID).\n\
             - **Pending transfers**: `accept` is the receiver's and `cancel` the sender's; the other \
             party gets `403 forbidden`, anyone else `404 not_found`, and `409 invalid_state` means \
             the transfer is no longer pending.\n\
             - **Idempotency**: POSTs that create or move money take `Idempotency-Key`; a retry \
             with the same key and body answers the first answer again; another body under the \
             key is `422 idempotency_key_reused`, and a request while the first is still running \
             `409 conflict`.\n\
             - **Lists** are cursor pages: `?limit=` 1–{PAGE_LIMIT_MAX} (default 50) and `?cursor=` \
             (the previous page's `next_cursor`, `null` on the last page)."
        ));
    }
}

/// Answers that follow from how an operation is reached rather than from what it does: the
/// extractors' rejections (see `extract.rs`) and unexpected failures. Each rule is stated once
/// here and added to every operation it applies to; a handler's own description of a status
/// wins for its code. Every error response without a body gets [`ErrorBody`].
///
/// Applied to the finished document (the routes' operations join `ApiDoc` after its own
/// modifiers ran).
pub struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in operations(item) {
                optional_body(op);
                for (code, why) in shared_answers(path, op) {
                    add_answer(op, code, &why);
                }
                for (status, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && status.as_str() >= "400"
                        && response.content.is_empty()
                    {
                        let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
                        response.content.insert("application/json".into(), body.into());
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// utoipa writes an `Option<T>` request body as "required: false" with the schema
/// `oneOf [T, null]`, which would also offer a JSON `null` body; an optional body is `T` or
/// nothing.
fn optional_body(op: &mut Operation) {
    let Some(RefOr::T(body)) = &mut op.request_body else {
        return;
    };
    if body.required == Some(Required::True) {
        return;
    }
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let not_null = one_of.items.iter().find(|s| !is_null(s)).cloned();
            if one_of.items.len() == 2 && not_null.is_some() {
                content.schema = not_null;
            }
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::new(Type::Null))
}

fn secured_by(op: &Operation, scheme: &str) -> bool {
    let requirement = SecurityRequirement::new(scheme, Vec::<String>::new());
    op.security.iter().flatten().any(|r| *r == requirement)
}

fn has_parameter(op: &Operation, place: ParameterIn) -> bool {
    op.parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
}

fn takes_idempotency_key(op: &Operation) -> bool {
    op.parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.name == IDEMPOTENCY_KEY_HEADER))
}

/// The error codes `op` can answer whatever its handler does, each with why.
fn shared_answers(path: &str, op: &Operation) -> Vec<(ErrorCode, String)> {
    let mut answers = Vec::new();
    if secured_by(op, USER_SCHEME) {
        answers.push((
            ErrorCode::Unauthorized,
            "no access token, or one that is invalid or expired".into(),
        ));
    }
    if secured_by(op, ADMIN_SCHEME) {
        answers.push((ErrorCode::Unauthorized, "no admin token, or a wrong one".into()));
        answers.push((
            ErrorCode::Forbidden,
            "a user's access token or a business's API key instead of the admin token".into(),
        ));
    }
    if secured_by(op, BUSINESS_SCHEME) {
        answers.push((
            ErrorCode::Unauthorized,
            "no API key, or one that is not (or no longer) valid".into(),
        ));
        answers.push((
            ErrorCode::Forbidden,
            "a user's access token or the admin token instead of an API key".into(),
        ));
    }
    let body_required = match &op.request_body {
        Some(RefOr::T(body)) => Some(body.required == Some(Required::True)),
        Some(RefOr::Ref(_)) => Some(true),
        None => None,
    };
    let has_query_or_header = has_parameter(op, ParameterIn::Query) || has_parameter(op, ParameterIn::Header);
    if body_required.is_some() || has_query_or_header {
        answers.push((
            ErrorCode::ValidationFailed,
            "a malformed body or parameter, or a value out of its bounds".into(),
        ));
    }
    if body_required.is_some() {
        let max = REQUEST_BODY_BYTES_MAX / 1024;
        answers.push((ErrorCode::PayloadTooLarge, format!("the body is over {max} KiB")));
    }
    if body_required == Some(true) {
        answers.push((
            ErrorCode::UnsupportedMediaType,
            "the body is not sent as `application/json`".into(),
        ));
    }
    if has_parameter(op, ParameterIn::Path) {
        answers.push((ErrorCode::NotFound, "no such object of the caller's".into()));
    }
    if takes_idempotency_key(op) {
        answers.push((
            ErrorCode::Conflict,
            "a request with this Idempotency-Key is still running".into(),
        ));
        answers.push((
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key came with another request".into(),
        ));
    }
    if path.starts_with("/v1/") {
        answers.push((
            ErrorCode::Internal,
            "an unexpected failure (logged; the message tells nothing more)".into(),
        ));
    }
    answers
}

/// Adds `code` to `op`'s answers, or to the description of its status when the handler
/// declared that status for other codes.
fn add_answer(op: &mut Operation, code: ErrorCode, why: &str) {
    let line = format!("{}: {why}", code.as_str());
    let responses = &mut op.responses.responses;
    match responses.get_mut(&code.status().to_string()) {
        None => {
            responses.insert(code.status().to_string(), Response::new(line).into());
        }
        Some(RefOr::T(declared)) if !declared.description.contains(code.as_str()) => {
            declared.description = format!("{}; {line}", declared.description);
        }
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn document() -> serde_json::Value {
        let (_, doc) = crate::app::documented_routes();
        serde_json::to_value(doc).unwrap()
    }

    /// Unique operation ids, and every link leads to one of them.
    #[test]
    fn operation_ids_are_unique_and_links_lead_to_them() {
        let doc = document();
        let mut seen = HashSet::new();
        let mut linked = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(seen.insert(id.clone()), "{method} {path}: operationId {id} is taken");
                for response in op["responses"].as_object().unwrap().values() {
                    for link in response["links"].as_object().into_iter().flat_map(|l| l.values()) {
                        linked.push(link["operationId"].as_str().unwrap().to_owned());
                    }
                }
            }
        }
        assert!(!linked.is_empty());
        for target in linked {
            assert!(seen.contains(&target), "a link leads to no operation: {target}");
        }
    }

    #[test]
    fn every_error_answer_has_the_error_body() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.as_str() >= "400" {
                        let schema = &response["content"]["application/json"]["schema"]["$ref"];
                        assert!(schema.is_string(), "{method} {path} {status}: no body declared");
                    }
                }
            }
        }
    }

    #[test]
    fn secured_operations_answer_401_and_admin_ones_403() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = &op["responses"];
                if op.get("security").is_some() {
                    assert!(responses.get("401").is_some(), "{method} {path}: no 401");
                }
                if path.starts_with("/v1/admin/") {
                    assert!(responses.get("403").is_some(), "{method} {path}: no 403");
                }
            }
        }
    }

    /// Query parameters are declared as such (not as required path parameters).
    #[test]
    fn list_parameters_are_optional_query_parameters() {
        let doc = document();
        let params = doc["paths"]["/v1/transfers"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .clone();
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["in"], "query");
        assert_eq!(limit["required"], false);
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], PAGE_LIMIT_MAX);
        assert!(params.iter().all(|p| p["in"] == "query"));
    }
}
