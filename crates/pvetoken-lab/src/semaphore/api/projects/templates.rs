//! Templates (`api/projects/templates.go`): validated as `db.Template.Validate` and the SQL back-ends' foreign
//! keys do; tasks are not modelled (`tasks` stays 0).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use pvetoken_api::semaphore::Template;
use serde::Deserialize;

use crate::semaphore::api::extract::{ManageResources, ProjectCall, ProjectItemCall};
use crate::semaphore::api::{Answer, bind, error, json, status};
use crate::semaphore::sim::SemaphoreSim;
use crate::semaphore::store::{State as Data, StoredInventory};

/// The apps a default Semaphore accepts (`util.Config.Apps`, filled from `appPriorities` in util/config.go).
const APPS: [&str; 6] = ["ansible", "terraform", "tofu", "bash", "powershell", "python"];

fn is_terraform(app: &str) -> bool {
    matches!(app, "terraform" | "tofu")
}

/// `db.Template.Validate()`: a 400 with Semaphore's message.
fn validate_template(template: &Template) -> Result<(), Response> {
    let invalid = |message: &str| Err(error(StatusCode::BAD_REQUEST, message));
    if template.app == "ansible" && template.inventory_id.is_none() {
        return invalid("template inventory can not be empty");
    }
    if template.name.is_empty() {
        return invalid("template name can not be empty");
    }
    if !is_terraform(&template.app) && template.playbook.is_empty() {
        return invalid("template playbook can not be empty");
    }
    if let Some(arguments) = &template.arguments
        && serde_json::from_str::<serde_json::Value>(arguments).is_err()
    {
        return invalid("template arguments must be valid JSON");
    }
    Ok(())
}

/// The foreign keys of `project__template` (SQL back-ends, db/sql/migrations/v0.0.0.sql): an inventory, repository,
/// environment or view that is not in the project makes the insert/update fail, which `helpers.WriteError` answers with a bare 400.
fn check_template_references(state: &Data, project_id: i64, template: &Template) -> Result<(), Response> {
    let inventory_ok = template.inventory_id.is_none_or(|id| state.inventory(project_id, id).is_some());
    let repository_ok = state.repository(project_id, template.repository_id).is_some();
    let environment_ok = template.environment_id.is_none_or(|id| state.environment(project_id, id).is_some());
    // `view_id` references project__view (migration v2.8.8); the lab has no views, so any view id fails.
    let view_ok = template.view_id.is_none();
    if inventory_ok && repository_ok && environment_ok && view_ok {
        Ok(())
    } else {
        Err(status(StatusCode::BAD_REQUEST))
    }
}

fn named<T>(items: &[T], matches: impl Fn(&T) -> bool, name: impl Fn(&T) -> &str) -> String {
    items.iter().find(|item| matches(item)).map(|item| name(item).to_lowercase()).unwrap_or_default()
}

/// Only the templates of `app` when given; sorted as `GetTemplates` does (see the key below).
pub(crate) async fn list_templates(
    State(sim): State<SemaphoreSim>,
    Query(query): Query<TemplateListQuery>,
    call: ProjectCall<ManageResources>,
) -> Answer {
    let project_id = call.project_id;
    let state = sim.lock();
    let mut templates: Vec<&Template> = state
        .templates
        .iter()
        .filter(|tpl| tpl.project_id == project_id)
        .filter(|tpl| query.app.as_deref().is_none_or(|app| app.is_empty() || tpl.app == app))
        .collect();
    // db/sql/template.go GetTemplates: `name` by default; `playbook` by column; inventory, environment and
    // repository by the joined row's name.
    let key = |tpl: &Template| -> String {
        match query.sort.as_deref() {
            Some("playbook") => tpl.playbook.clone(),
            Some("inventory") => {
                named(&state.inventories, |inv| Some(inv.id) == tpl.inventory_id, |inv| inv.name.as_str())
            }
            Some("environment") => {
                named(&state.environments, |env| Some(env.id) == tpl.environment_id, |env| env.name.as_str())
            }
            Some("repository") => {
                named(&state.repositories, |repo| repo.id == tpl.repository_id, |repo| repo.name.as_str())
            }
            _ => tpl.name.clone(),
        }
    };
    templates.sort_by(|a, b| key(a).cmp(&key(b)).then(a.id.cmp(&b.id)));
    if query.order.as_deref() == Some("desc") {
        templates.reverse();
    }
    Ok(json(StatusCode::OK, &templates))
}

#[derive(Deserialize)]
pub(crate) struct TemplateListQuery {
    sort: Option<String>,
    order: Option<String>,
    /// 2.16: only the templates of this app.
    app: Option<String>,
}

/// Answers 201 with the template; a Terraform/OpenTofu template without an inventory gets a `default` workspace.
pub(crate) async fn create_template(
    State(sim): State<SemaphoreSim>,
    call: ProjectCall<ManageResources>,
    body: Bytes,
) -> Answer {
    let project_id = call.project_id;
    let mut template: Template = bind(&body)?;
    // `AddTemplate`: the project comes from the URL, whatever the body says; the id is the store's.
    template.project_id = project_id;
    template.tasks = 0;
    validate_template(&template)?;
    let mut state = sim.lock();
    check_template_references(&state, project_id, &template)?;
    template.id = state.new_id();
    state.templates.push(template.clone());
    sim.save(&state);
    // Semaphore checks the app only after the row is stored: an unknown app answers 400 and leaves the template.
    if !APPS.contains(&template.app.as_str()) {
        return Err(error(StatusCode::BAD_REQUEST, &format!("Invalid app id: {}", template.app)));
    }
    if is_terraform(&template.app) {
        let workspace = match template.inventory_id {
            Some(id) => id,
            None => {
                let id = state.new_id();
                state.inventories.push(StoredInventory {
                    id,
                    project_id,
                    name: "default".to_owned(),
                    inventory: "default".to_owned(),
                    kind: format!("{}-workspace", template.app),
                    template_id: None,
                });
                id
            }
        };
        template.inventory_id = Some(workspace);
        if let Some(inventory) = state.inventories.iter_mut().find(|inv| inv.id == workspace) {
            inventory.template_id = Some(template.id);
        }
        if let Some(stored) = state.templates.iter_mut().find(|tpl| tpl.id == template.id) {
            stored.inventory_id = Some(workspace);
        }
        sim.save(&state);
    }
    Ok(json(StatusCode::CREATED, &template))
}

pub(crate) async fn get_template(State(sim): State<SemaphoreSim>, call: ProjectItemCall<ManageResources>) -> Answer {
    let state = sim.lock();
    let template = state.template(call.project_id, call.item_id).ok_or_else(|| status(StatusCode::NOT_FOUND))?;
    Ok(json(StatusCode::OK, template))
}

/// Answers 204; the body must name the template and project of the URL.
pub(crate) async fn update_template(
    State(sim): State<SemaphoreSim>,
    call: ProjectItemCall<ManageResources>,
    body: Bytes,
) -> Answer {
    let (project_id, template_id) = (call.project_id, call.item_id);
    // `TemplatesMiddleware` loads the template before the handler reads the body.
    let tasks = sim.lock().template(project_id, template_id).map(|tpl| tpl.tasks);
    let Some(tasks) = tasks else { return Err(status(StatusCode::NOT_FOUND)) };
    let mut template: Template = bind(&body)?;
    if !APPS.contains(&template.app.as_str()) {
        return Err(error(StatusCode::BAD_REQUEST, &format!("Invalid app id: {}", template.app)));
    }
    if template.id != template_id {
        return Err(error(StatusCode::BAD_REQUEST, "template id in URL and in body must be the same"));
    }
    if template.project_id != project_id {
        return Err(error(StatusCode::BAD_REQUEST, "You can not move template to other project"));
    }
    if template.arguments.as_deref() == Some("") {
        template.arguments = None;
    }
    template.tasks = tasks;
    validate_template(&template)?;
    let mut state = sim.lock();
    check_template_references(&state, project_id, &template)?;
    let Some(stored) = state.templates.iter_mut().find(|tpl| tpl.project_id == project_id && tpl.id == template_id)
    else {
        return Err(status(StatusCode::NOT_FOUND));
    };
    *stored = template;
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}

pub(crate) async fn delete_template(State(sim): State<SemaphoreSim>, call: ProjectItemCall<ManageResources>) -> Answer {
    let (project_id, template_id) = (call.project_id, call.item_id);
    let mut state = sim.lock();
    if state.template(project_id, template_id).is_none() {
        return Err(status(StatusCode::NOT_FOUND));
    }
    state.templates.retain(|tpl| !(tpl.project_id == project_id && tpl.id == template_id));
    sim.save(&state);
    Ok(status(StatusCode::NO_CONTENT))
}
