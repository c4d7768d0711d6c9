//! Assets: who produces and consumes each (from the DAG versions the scheduler runs), each
//! interval's materializations, and the consumer intervals that are stale.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::views::Interval;
use sluice_store::{MaterializationRecord, StaleRecord};

/// Most materializations one history answer holds.
pub const MAX_HISTORY: usize = 5000;
/// Most stale intervals one answer lists (the count goes on).
pub const MAX_STALE: usize = 5000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetProducer {
    pub dag_id: String,
    pub task_id: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetConsumer {
    pub dag_id: String,
    /// `within` or `same`.
    pub intervals: String,
    /// Real time added to the range read (`-45m`), when not zero.
    pub offset: Option<String>,
    /// The consumer's own intervals the range spans, `[first, last]`.
    pub shift: [i32; 2],
    /// `rerun` or `mark_stale`.
    pub on_upstream_change: String,
    pub max_reruns: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MaterializationView {
    pub asset: String,
    pub interval: Interval,
    /// Its version: later writes, of any interval, have larger numbers.
    pub version: u64,
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub at: DateTime<Utc>,
}

impl MaterializationView {
    pub fn of(m: &MaterializationRecord) -> Self {
        MaterializationView {
            asset: m.asset.clone(),
            interval: Interval {
                start: m.interval_start,
                end: m.interval_end,
            },
            version: m.seq,
            dag_id: m.dag.clone(),
            run_id: m.run_id.clone(),
            task_id: m.task.clone(),
            try_number: m.try_number,
            at: m.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetSummary {
    pub asset: String,
    pub producers: Vec<AssetProducer>,
    pub consumers: Vec<AssetConsumer>,
    /// The newest write of any of its intervals.
    pub latest: Option<MaterializationView>,
    /// Consumer intervals stale because one of its intervals was written again (counted
    /// over the first 5,000 stale intervals of the state).
    pub stale_intervals: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetList {
    pub assets: Vec<AssetSummary>,
}

/// A consumer interval that read an older version of an input than the latest.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaleView {
    pub dag_id: String,
    pub interval: Interval,
    pub since: DateTime<Utc>,
    /// Reruns once its inputs settle (`on_upstream_change: rerun`), unless held.
    pub rerun: bool,
    /// Why it is not rerun (its reruns used up), when so.
    pub held: Option<String>,
    /// The rewrites that made it stale, one line each.
    pub causes: Vec<String>,
}

impl StaleView {
    pub fn of(s: &StaleRecord) -> Self {
        let mut causes: Vec<String> = s.causes.iter().map(|c| c.describe()).collect();
        if s.more_causes > 0 {
            causes.push(format!("{} more", s.more_causes));
        }
        StaleView {
            dag_id: s.dag.clone(),
            interval: Interval {
                start: s.interval_start,
                end: s.interval_end,
            },
            since: s.since,
            rerun: s.rerun,
            held: s.held.clone(),
            causes,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetHistory {
    pub asset: String,
    pub producers: Vec<AssetProducer>,
    pub consumers: Vec<AssetConsumer>,
    /// Its intervals' writes in the range, by interval then version (at most 5,000).
    pub materializations: Vec<MaterializationView>,
    /// Consumer intervals stale because of writes of this asset.
    pub stale: Vec<StaleView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StaleList {
    /// How many intervals are stale (all of them, even past the listed ones).
    pub stale: usize,
    pub intervals: Vec<StaleView>,
}

/// Each asset's producers and consumers.
pub type Catalog = BTreeMap<String, (Vec<AssetProducer>, Vec<AssetConsumer>)>;

/// Each asset with its producers and consumers, from the DAG versions the scheduler runs.
pub fn catalog(api: &Api) -> ApiResult<Catalog> {
    let mut assets = Catalog::new();
    for id in api.store.dag_ids()? {
        let Ok((_, dag)) = api.current_dag(&id) else {
            continue;
        };
        for (task_id, task) in &dag.tasks {
            for asset in &task.settings.produces {
                assets
                    .entry(asset.clone())
                    .or_default()
                    .0
                    .push(AssetProducer {
                        dag_id: dag.dag.clone(),
                        task_id: task_id.clone(),
                    });
            }
        }
        for (asset, consumes) in &dag.consumes {
            assets
                .entry(asset.clone())
                .or_default()
                .1
                .push(AssetConsumer {
                    dag_id: dag.dag.clone(),
                    intervals: super::views::name_of(&consumes.intervals),
                    offset: (!consumes.offset.is_zero()).then(|| consumes.offset.to_string()),
                    shift: consumes.shift,
                    on_upstream_change: super::views::name_of(&consumes.on_upstream_change),
                    max_reruns: consumes.max_reruns,
                });
        }
    }
    Ok(assets)
}

pub fn stale_of_asset(api: &Api, asset: &str) -> ApiResult<Vec<StaleRecord>> {
    Ok(api
        .store
        .stale_intervals(None, MAX_STALE)?
        .into_iter()
        .filter(|s| s.causes.iter().any(|c| c.asset == asset))
        .collect())
}

/// Every asset a DAG produces or consumes: producers, consumers, the newest write, how many
/// consumer intervals its rewrites left stale.
#[utoipa::path(get, path = "/api/v1/assets", operation_id = "list_assets", tag = "assets",
    responses((status = 200, body = AssetList), (status = 401, body = ErrorBody)))]
pub async fn list(State(api): State<Api>) -> ApiResult<Json<AssetList>> {
    let assets = summaries(&api, &catalog(&api)?)?;
    Ok(Json(AssetList { assets }))
}

/// Each asset of `catalog` with its newest write and stale readers (the list, for the API
/// and the UI alike).
pub fn summaries(api: &Api, catalog: &Catalog) -> ApiResult<Vec<AssetSummary>> {
    let stale = api.store.stale_intervals(None, MAX_STALE)?;
    let mut assets = Vec::new();
    for (asset, (producers, consumers)) in catalog {
        let latest = api
            .store
            .latest_write(asset)?
            .as_ref()
            .map(MaterializationView::of);
        let stale_intervals = stale
            .iter()
            .filter(|s| s.causes.iter().any(|c| c.asset == *asset))
            .count();
        assets.push(AssetSummary {
            asset: asset.clone(),
            producers: producers.clone(),
            consumers: consumers.clone(),
            latest,
            stale_intervals,
        });
    }
    Ok(assets)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Intervals starting from this instant (RFC 3339). Without `from` and `to`: the newest
    /// intervals' writes; with either, the oldest first from `from` (or the beginning).
    pub from: Option<DateTime<Utc>>,
    /// Intervals starting before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Most writes returned (default 500, at most 5,000).
    pub limit: Option<usize>,
}

/// One asset's writes, interval by interval (each version), with the consumer intervals
/// they left stale.
#[utoipa::path(get, path = "/api/v1/assets/{asset}", operation_id = "get_asset", tag = "assets",
    params(("asset" = String, Path), HistoryQuery),
    responses((status = 200, body = AssetHistory), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn history(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<AssetHistory>> {
    let Path(asset) = path?;
    let Query(query) = query?;
    Ok(Json(asset_history(&api, &asset, &query)?))
}

/// [`history`].
fn asset_history(api: &Api, asset: &str, query: &HistoryQuery) -> ApiResult<AssetHistory> {
    asset_history_with(api, asset, query, &stale_of_asset(api, asset)?)
}

/// [`history`] with the stale intervals its writes caused already read (the UI marks its
/// rows from the same records).
pub fn asset_history_with(
    api: &Api,
    asset: &str,
    query: &HistoryQuery,
    stale: &[StaleRecord],
) -> ApiResult<AssetHistory> {
    let mut catalog = catalog(api)?;
    let Some((producers, consumers)) = catalog.remove(asset) else {
        return Err(ApiError::not_found(format!("no asset `{asset}`"))
            .hint("GET /api/v1/assets lists the assets the DAGs produce and consume"));
    };
    let limit = query.limit.unwrap_or(500);
    if !(1..=MAX_HISTORY).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_HISTORY}, not {limit}"
        ))
        .hint("e.g. limit=500, with from and to for a range"));
    }
    let records = match (query.from, query.to) {
        (None, None) => {
            let mut newest = api.store.recent_materializations(asset, limit)?;
            newest.reverse();
            newest
        }
        (from, to) => {
            let (from, to) = super::runs::time_range(from, to)?;
            api.store.materializations(asset, from, to, limit)?
        }
    };
    Ok(AssetHistory {
        asset: asset.to_owned(),
        producers,
        consumers,
        materializations: records.iter().map(MaterializationView::of).collect(),
        stale: stale.iter().map(StaleView::of).collect(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StaleQuery {
    /// Only this consumer DAG's intervals.
    pub dag: Option<String>,
}

/// Every stale interval (`sluice audit --stale`): consumer intervals that read an input
/// written again since, with the rewrites that made them so.
#[utoipa::path(get, path = "/api/v1/stale", operation_id = "list_stale", tag = "assets",
    params(StaleQuery),
    responses((status = 200, body = StaleList), (status = 400, body = ErrorBody)))]
pub async fn stale(
    State(api): State<Api>,
    query: Result<Query<StaleQuery>, QueryRejection>,
) -> ApiResult<Json<StaleList>> {
    let Query(query) = query?;
    let dag = query.dag.as_deref().filter(|d| !d.is_empty());
    let intervals = api.store.stale_intervals(dag, MAX_STALE)?;
    let stale = match dag {
        Some(dag) => api.store.stale_count_of(dag),
        None => api.store.stale_count(),
    };
    Ok(Json(StaleList {
        stale,
        intervals: intervals.iter().map(StaleView::of).collect(),
    }))
}
