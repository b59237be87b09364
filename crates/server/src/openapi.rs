//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "minipay", description = "Wallet API: users, accounts on a double-entry ledger, charges under a \
        daily limit, transfers with auto-charge. Business API: businesses authenticated by their API key. Errors are \
        {\"error\": {\"code\", \"message\"}} with a stable code."),
    modifiers(&Security),
    tags((name = "users"), (name = "accounts"), (name = "bank accounts"), (name = "transfers"), (name = "settlements"), (name = "notifications"),
         (name = "admin", description = "Needs the admin token"),
         (name = "businesses", description = "Onboarding businesses and their keys; needs the admin token"),
         (name = "business API", description = "Needs a business's API key"), (name = "operations"))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme("admin", bearer());
        components.add_security_scheme("api_key", bearer());
    }
}
