//! Integration tests, one module per area.
mod acl_cli;
mod audit;
mod audit_html;
mod audit_live;
mod deliver;
mod demo;
mod doctor;
mod doctor_explain;
mod doctor_findings;
mod lifecycle;
mod lint;
mod register;
mod render;
mod render_consumers;
mod rotate_flow;
mod support;
mod third_party;
