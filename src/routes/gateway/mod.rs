//! The Gateway API's routing semantics, pure: hostnames with Gateway
//! wildcards, and HTTPRoute matches with their precedence. The routing
//! table builds Gateway routes from these.

pub mod cors;
pub mod filters;
pub mod hostname;
pub mod matching;
pub mod table;

pub use cors::{Cors, CorsAnswer};
pub use filters::{Filter, Origin};
pub use hostname::GatewayHost;
pub use matching::{HttpMatch, MatchError, PathMatch, RequestParts, ValueMatch};
pub use table::{GatewayAction, GatewayTable, Slot};
