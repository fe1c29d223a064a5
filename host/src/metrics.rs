//! Prometheus metrics, served at `GET /metrics` in the text format: webhook
//! outcomes, events stored, and every plugin run's receipt aggregated per
//! plugin. An event offered to a plugin that does not run it now (it is
//! quarantined, or its account's token is refused) is a deferral, counted
//! apart: runs count only runs that ran.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::inbox::InboxStats;
use crate::runtime::RunReceipt;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabel {
    plugin: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeferralLabel {
    plugin: String,
    reason: &'static str,
}

fn run_seconds_histogram() -> Histogram {
    // 50 µs to ~3 s.
    Histogram::new(exponential_buckets(0.00005, 3.0, 11))
}

/// igloo's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    webhooks: Family<StatusLabel, Counter>,
    events_stored: Family<KindLabel, Counter>,
    events_duplicate: Counter,
    runs: Family<RunLabel, Counter>,
    deferrals: Family<DeferralLabel, Counter>,
    run_seconds: Family<PluginLabel, Histogram, fn() -> Histogram>,
    fuel: Family<PluginLabel, Counter>,
    host_calls: Family<PluginLabel, Counter>,
    peak_memory: Family<PluginLabel, Gauge>,
    quarantined: Family<PluginLabel, Gauge>,
    inbox_pending: Gauge,
    inbox_unsplit: Gauge,
    inbox_events: Gauge,
    timer_sets_over_budget: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Register every metric.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("igloo");
        let metrics = Self {
            webhooks: Family::default(),
            events_stored: Family::default(),
            events_duplicate: Counter::default(),
            runs: Family::default(),
            deferrals: Family::default(),
            run_seconds: Family::new_with_constructor(run_seconds_histogram),
            fuel: Family::default(),
            host_calls: Family::default(),
            peak_memory: Family::default(),
            quarantined: Family::default(),
            inbox_pending: Gauge::default(),
            inbox_unsplit: Gauge::default(),
            inbox_events: Gauge::default(),
            timer_sets_over_budget: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "webhooks",
            "Webhook deliveries by response status",
            metrics.webhooks.clone(),
        );
        registry.register(
            "events_stored",
            "Events stored for the first time, by kind",
            metrics.events_stored.clone(),
        );
        registry.register(
            "events_duplicate",
            "Redelivered events recognised and not stored again",
            metrics.events_duplicate.clone(),
        );
        registry.register(
            "plugin_runs",
            "Plugin runs by outcome",
            metrics.runs.clone(),
        );
        registry.register(
            "run_deferrals",
            "Events offered to a plugin that did not run them now, by reason \
             (quarantined, token-invalid): they wait, and are not runs",
            metrics.deferrals.clone(),
        );
        registry.register(
            "plugin_run_seconds",
            "Wall time of plugin runs",
            metrics.run_seconds.clone(),
        );
        registry.register(
            "plugin_fuel",
            "Fuel (about one unit per wasm instruction) used by plugin runs",
            metrics.fuel.clone(),
        );
        registry.register(
            "plugin_host_calls",
            "Host functions called by plugin runs",
            metrics.host_calls.clone(),
        );
        registry.register(
            "plugin_peak_memory_bytes",
            "Largest linear memory any run of the plugin reached",
            metrics.peak_memory.clone(),
        );
        registry.register(
            "plugin_quarantined",
            "1 while the plugin is quarantined by its circuit breaker",
            metrics.quarantined.clone(),
        );
        registry.register(
            "inbox_pending_events",
            "Events waiting for plugins",
            metrics.inbox_pending.clone(),
        );
        registry.register(
            "inbox_unsplit_deliveries",
            "Webhook bodies accepted but not yet split into events",
            metrics.inbox_unsplit.clone(),
        );
        registry.register(
            "inbox_events",
            "Events held in the inbox",
            metrics.inbox_events.clone(),
        );
        registry.register(
            "timer_sets_over_budget",
            "Timer sets refused because the plugin's timers had fired their budget of the \
             minute in that account",
            metrics.timer_sets_over_budget.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Bring the count of timer sets refused over budget up to `total`,
    /// the scheduler's own count since start.
    pub(crate) fn set_timer_sets_over_budget(&self, total: u64) {
        let counted = self.timer_sets_over_budget.get();
        self.timer_sets_over_budget
            .inc_by(total.saturating_sub(counted));
    }

    /// Count a webhook response, by status (`accepted`, `bad_signature`, …).
    pub(crate) fn webhook(&self, status: &'static str) {
        self.webhooks.get_or_create(&StatusLabel { status }).inc();
    }

    /// Count stored events by kind, and recognised duplicates.
    pub(crate) fn stored(&self, new_kinds: impl Iterator<Item = &'static str>, duplicates: usize) {
        for kind in new_kinds {
            self.events_stored.get_or_create(&KindLabel { kind }).inc();
        }
        self.events_duplicate.inc_by(duplicates as u64);
    }

    /// Add a run's receipt. A deferred one (the plugin did not run the
    /// event now: quarantined, or the account's token refused) is counted
    /// as a deferral, not a run; what it used before stopping, if anything,
    /// still counts in fuel and host calls.
    pub(crate) fn receipt(&self, receipt: &RunReceipt) {
        let plugin = PluginLabel {
            plugin: receipt.plugin.clone(),
        };
        if receipt.outcome.is_deferred() {
            self.deferrals
                .get_or_create(&DeferralLabel {
                    plugin: receipt.plugin.clone(),
                    reason: receipt.outcome.label(),
                })
                .inc();
            if receipt.fuel_used > 0 || receipt.host_calls > 0 {
                self.fuel.get_or_create(&plugin).inc_by(receipt.fuel_used);
                self.host_calls
                    .get_or_create(&plugin)
                    .inc_by(u64::from(receipt.host_calls));
            }
            return;
        }
        self.runs
            .get_or_create(&RunLabel {
                plugin: receipt.plugin.clone(),
                outcome: receipt.outcome.label(),
            })
            .inc();
        self.run_seconds
            .get_or_create(&plugin)
            .observe(receipt.wall.as_secs_f64());
        self.fuel.get_or_create(&plugin).inc_by(receipt.fuel_used);
        self.host_calls
            .get_or_create(&plugin)
            .inc_by(u64::from(receipt.host_calls));
        let peak = self.peak_memory.get_or_create(&plugin);
        let bytes = receipt.peak_memory_bytes as i64;
        if bytes > peak.get() {
            peak.set(bytes);
        }
    }

    /// Set whether `plugin` is quarantined.
    pub(crate) fn set_quarantined(&self, plugin: &str, quarantined: bool) {
        self.quarantined
            .get_or_create(&PluginLabel {
                plugin: plugin.to_owned(),
            })
            .set(i64::from(quarantined));
    }

    /// Render everything in the Prometheus text format, with the inbox's
    /// current counts.
    pub(crate) fn render(&self, inbox: InboxStats) -> String {
        self.inbox_pending.set(inbox.pending as i64);
        self.inbox_unsplit.set(inbox.unsplit as i64);
        self.inbox_events.set(inbox.events as i64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::RunOutcome;

    fn receipt(outcome: RunOutcome) -> RunReceipt {
        RunReceipt::before_running("faq-bot", "1.0.0", "message:1:m", outcome)
    }

    #[test]
    fn offers_to_a_plugin_that_does_not_run_them_are_deferrals_not_runs() {
        let metrics = Metrics::new();
        metrics.receipt(&receipt(RunOutcome::Ok));
        for _ in 0..3 {
            metrics.receipt(&receipt(RunOutcome::Quarantined));
        }
        metrics.receipt(&receipt(RunOutcome::WaitingForToken));
        let text = metrics.render(InboxStats::default());
        let line = |name: &str| {
            text.lines()
                .find(|line| line.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {text}"))
                .to_owned()
        };
        assert_eq!(
            line("igloo_plugin_runs_total{"),
            r#"igloo_plugin_runs_total{plugin="faq-bot",outcome="ok"} 1"#
        );
        assert!(!text.contains(r#"outcome="quarantined""#), "{text}");
        assert!(!text.contains(r#"outcome="token-invalid""#), "{text}");
        assert_eq!(
            line(r#"igloo_run_deferrals_total{plugin="faq-bot",reason="quarantined"}"#),
            r#"igloo_run_deferrals_total{plugin="faq-bot",reason="quarantined"} 3"#
        );
        assert_eq!(
            line(r#"igloo_run_deferrals_total{plugin="faq-bot",reason="token-invalid"}"#),
            r#"igloo_run_deferrals_total{plugin="faq-bot",reason="token-invalid"} 1"#
        );
        assert_eq!(
            line(r#"igloo_plugin_run_seconds_count{"#),
            r#"igloo_plugin_run_seconds_count{plugin="faq-bot"} 1"#,
            "only the run that ran is timed"
        );
    }
}
