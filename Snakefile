# clinxai: evaluate heatmap explanations of multi-modal medical-image classifiers (Clinical XAI Guidelines).
# Thin entry point: config, validation (rules/common.smk), one rule file per stage, the default target.

import sys

from snakemake.utils import min_version

min_version("9.17")  # 9.10-9.16 schedule more threads than --cores (snakemake#3913)

# The default config file is read strictly first: a YAML error or a duplicated key names file, line and column
# (Snakemake's own message does not). Files given with --configfile: `python -m clinxai.config check FILE`.
sys.path.insert(0, f"{workflow.basedir}/workflow")
from clinxai.config import load_config_file

load_config_file("config/config.yaml")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/heatmaps.smk"
include: "workflow/rules/truthfulness.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/plausibility.smk"
include: "workflow/rules/localisation.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/statistics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/cards.smk"


# Tables and figures are quick: on a cluster they run on the submit host instead of waiting in the queue.
localrules:
    all,
    model_summary,
    merge_heatmaps,
    heatmap_timing,
    truthfulness_summary,
    fig3_perturbation_curves,
    synthetic_summary,
    informativeness,
    fig5_right_wrong,
    localisation_summary,
    road_comparison,
    fig_degradation_curves,
    sensitivity_summary,
    fig_sensitivity,
    method_statistics,
    tables,
    scorecard,
    run_info,
    saliency_cards,
    case_viewer,


rule all:
    default_target: True
    input:
        all_targets(),
