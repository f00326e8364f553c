//! Semaphore UI (`/api/...`) JSON shapes, as `api-docs.yml` 2.16.14 (`semaphoreui/semaphore`) defines them.
//!
//! Semaphore calls an environment a "Variable Group" in its UI. An environment holds plain extra variables (`json`,
//! a *string* containing JSON), plain environment variables (`env`, also a JSON string) and *secrets*: values that
//! are written through `secrets[]` operations on create/update and never returned by any GET (a GET lists their
//! `id`, `name` and `type` only). Secret `type` `env` becomes a process environment variable of the task, `var` an
//! extra variable.
//!
//! Request types that carry a secret value serialize it (that is their job: they go on the wire), but their `Debug`
//! is redacted because the value is a [`Secret`].

use serde::{Deserialize, Serialize};

use crate::{ExposeSecret, Secret};

/// `POST /api/auth/login` body. The password travels only inside this body.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    /// Login or e-mail (Semaphore lower-cases it).
    pub auth: String,
    /// The password.
    pub password: Secret,
}

impl Serialize for LoginRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("LoginRequest", 2)?;
        state.serialize_field("auth", &self.auth)?;
        state.serialize_field("password", self.password.expose_secret())?;
        state.end()
    }
}

/// Semaphore's error body: `{"error": "..."}` (many errors have no body at all, only a status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The message.
    pub error: String,
}

/// `GET /api/user` and the items of `GET /api/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Login.
    pub username: String,
    /// E-mail.
    #[serde(default)]
    pub email: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: String,
    /// Whether the user may do everything.
    #[serde(default)]
    pub admin: bool,
    /// Whether the user comes from LDAP/OIDC.
    #[serde(default)]
    pub external: bool,
    /// Whether alerts are sent to the user.
    #[serde(default)]
    pub alert: bool,
}

/// A project (`GET /api/projects`, `GET /api/project/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Project id.
    pub id: i64,
    /// Project name.
    pub name: String,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: String,
    /// Whether alerts are on.
    #[serde(default)]
    pub alert: bool,
    /// Alert chat id.
    #[serde(default)]
    pub alert_chat: Option<String>,
    /// Parallel task limit (0 = none).
    #[serde(default)]
    pub max_parallel_tasks: i64,
    /// Project type (empty for ordinary projects).
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// A user's role in a project. Semaphore's permission check lets every member read project resources
/// (GET/HEAD) and lets only roles with "manage project resources" (owner, manager) change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectRole {
    /// Everything, including the project's users and settings.
    Owner,
    /// Runs tasks and manages keys, repositories, inventories, environments, templates.
    Manager,
    /// Runs tasks only.
    TaskRunner,
    /// Reads only.
    Guest,
}

impl ProjectRole {
    /// Whether the role may create, change or delete keys, inventories, repositories, environments and templates.
    pub fn can_manage_resources(self) -> bool {
        matches!(self, Self::Owner | Self::Manager)
    }

    /// Whether the role may add, change or remove the project's users.
    pub fn can_manage_users(self) -> bool {
        matches!(self, Self::Owner)
    }

    /// Whether the role may change or delete the project itself.
    pub fn can_update_project(self) -> bool {
        matches!(self, Self::Owner)
    }

    /// Semaphore's permission bit mask (`GET /api/project/{id}/role`): run tasks 1, update project 2, manage
    /// resources 4, manage users 8.
    pub fn permissions(self) -> u32 {
        match self {
            Self::Owner => 1 | 2 | 4 | 8,
            Self::Manager => 1 | 4,
            Self::TaskRunner => 1,
            Self::Guest => 0,
        }
    }
}

/// How an environment secret reaches a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretType {
    /// A process environment variable (since 2.10.19).
    Env,
    /// An extra variable (Ansible `--extra-vars`, Terraform `-var`).
    Var,
}

/// What a `secrets[]` item of a create/update request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretOperation {
    /// Adds a secret (its `id` is ignored).
    Create,
    /// Replaces the secret with this `id` (unreliable before 2.16: pvetoken uses delete + create).
    Update,
    /// Removes the secret with this `id`.
    Delete,
}

/// A secret as GET returns it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentSecret {
    /// The secret's id (an access key id).
    pub id: i64,
    /// Variable name.
    pub name: String,
    /// How it reaches the task.
    #[serde(rename = "type")]
    pub kind: SecretType,
}

/// One `secrets[]` item of an environment create/update request.
#[derive(Debug, Deserialize)]
pub struct EnvironmentSecretRequest {
    /// The secret's id, for `update` and `delete`.
    #[serde(default)]
    pub id: Option<i64>,
    /// Variable name.
    #[serde(default)]
    pub name: String,
    /// The value, for `create` and `update`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// How it reaches the task.
    #[serde(rename = "type")]
    pub kind: Option<SecretType>,
    /// What to do.
    pub operation: Option<SecretOperation>,
}

impl Serialize for EnvironmentSecretRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut state = serializer.serialize_struct("EnvironmentSecretRequest", 5)?;
        if let Some(id) = self.id {
            state.serialize_field("id", &id)?;
        }
        state.serialize_field("name", &self.name)?;
        state.serialize_field("secret", self.secret.as_ref().map_or("", |secret| secret.expose_secret()))?;
        state.serialize_field("type", &self.kind)?;
        state.serialize_field("operation", &self.operation)?;
        state.end()
    }
}

/// `POST /api/project/{pid}/environment` and `PUT .../environment/{eid}` body.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnvironmentRequest {
    /// Required on PUT (must equal the URL's id); absent on POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Environment name (Semaphore does not make names unique).
    #[serde(default)]
    pub name: String,
    /// Must equal the URL's project id.
    #[serde(default)]
    pub project_id: i64,
    /// Vault password, if any.
    #[serde(default)]
    pub password: Option<String>,
    /// Extra variables: a string containing a JSON object (send `"{}"`).
    #[serde(default)]
    pub json: String,
    /// Environment variables: a string containing a JSON object (send `"{}"`).
    #[serde(default)]
    pub env: Option<String>,
    /// Secret operations.
    #[serde(default)]
    pub secrets: Vec<EnvironmentSecretRequest>,
}

/// An environment as GET (and 2.16's 201 on create) returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environment {
    /// Environment id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Project id.
    pub project_id: i64,
    /// Vault password, if any.
    #[serde(default)]
    pub password: Option<String>,
    /// Extra variables (JSON text).
    #[serde(default)]
    pub json: String,
    /// Environment variables (JSON text).
    #[serde(default)]
    pub env: Option<String>,
    /// Secrets: names and types only (`null` in some versions).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub secrets: Vec<EnvironmentSecret>,
}

/// A task template (`GET /api/project/{pid}/templates`, `GET .../templates/{tid}`; also the body of POST/PUT).
///
/// A template runs a playbook (or a Terraform/OpenTofu/Bash/... script, `app`) from a repository against an
/// inventory, with the variables and secrets of *one* environment (`environment_id`): a template without the
/// environment that holds the Proxmox credentials runs without them. 2.10 sends `null` for unset ids and strings;
/// 2.16 leaves them out (`omitempty`): both read as `None`/empty here, and unset fields are not written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Template id (ignored on POST).
    #[serde(default)]
    pub id: i64,
    /// Project id.
    #[serde(default)]
    pub project_id: i64,
    /// Inventory id (required for `app` `ansible`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_id: Option<i64>,
    /// Repository id.
    #[serde(default)]
    pub repository_id: i64,
    /// The environment (variable group) whose variables and secrets the tasks get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<i64>,
    /// Name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Playbook or script path in the repository (required except for Terraform/OpenTofu).
    #[serde(default, deserialize_with = "null_as_default")]
    pub playbook: String,
    /// Extra CLI arguments: a string containing a JSON array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `""` (task), `build` or `deploy`.
    #[serde(default, rename = "type", deserialize_with = "null_as_default", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `ansible`, `terraform`, `tofu`, `bash`, `powershell`, `python` (2.16 also `terragrunt`, `pulumi`).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "String::is_empty")]
    pub app: String,
    /// Branch overriding the repository's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    /// View (tab) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_id: Option<i64>,
    /// Runs automatically after its build template (deploy templates).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "is_false")]
    pub autorun: bool,
    /// Lets a task replace the template's arguments.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "is_false")]
    pub allow_override_args_in_task: bool,
    /// No alert on success.
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "is_false")]
    pub suppress_success_alerts: bool,
    /// Number of tasks run (read-only).
    #[serde(default, deserialize_with = "null_as_default")]
    pub tasks: i64,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn null_as_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<EnvironmentSecret>, D::Error> {
    Ok(Option::<Vec<EnvironmentSecret>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_request_debug_is_redacted_but_the_wire_form_carries_the_value() {
        let request = EnvironmentSecretRequest {
            id: None,
            name: "PROXMOX_TOKEN_SECRET".to_owned(),
            secret: Some(Secret::from("s3cr3t-value".to_owned())),
            kind: Some(SecretType::Env),
            operation: Some(SecretOperation::Create),
        };
        assert!(!format!("{request:?}").contains("s3cr3t-value"));
        let wire = serde_json::to_value(&request).expect("serializes");
        assert_eq!(wire["secret"], "s3cr3t-value");
        assert_eq!(wire["type"], "env");
        assert_eq!(wire["operation"], "create");
        assert!(wire.get("id").is_none());
    }

    #[test]
    fn environment_with_null_secrets_reads_as_no_secrets() {
        let text = r#"{"id":3,"name":"E","project_id":1,"password":null,"json":"{}","env":null,"secrets":null}"#;
        let env: Environment = serde_json::from_str(text).expect("parses");
        assert!(env.secrets.is_empty());
    }

    #[test]
    fn template_reads_the_nulls_of_2_10_and_the_omitted_fields_of_2_16_alike() {
        let old = r#"{"id":4,"project_id":1,"inventory_id":null,"repository_id":2,"environment_id":null,"name":"T",
            "playbook":"p.yml","arguments":null,"description":null,"type":"","app":"ansible","git_branch":null,
            "view_id":null,"autorun":false,"survey_vars":null,"vaults":null,"last_task":null,"tasks":0}"#;
        let new =
            r#"{"id":4,"project_id":1,"repository_id":2,"name":"T","playbook":"p.yml","app":"ansible","tasks":0}"#;
        let old: Template = serde_json::from_str(old).expect("2.10 shape parses");
        let new: Template = serde_json::from_str(new).expect("2.16 shape parses");
        assert_eq!(old, new);
        assert_eq!(old.environment_id, None);
        let wire = serde_json::to_value(&new).expect("serializes");
        assert!(wire.get("environment_id").is_none() && wire.get("inventory_id").is_none(), "{wire}");
    }

    #[test]
    fn only_owner_and_manager_manage_resources() {
        assert!(ProjectRole::Owner.can_manage_resources());
        assert!(ProjectRole::Manager.can_manage_resources());
        assert!(!ProjectRole::TaskRunner.can_manage_resources());
        assert!(!ProjectRole::Guest.can_manage_resources());
    }
}
