# Data: phantom datasets in the real on-disk formats, then validation, resizing, z-scoring and the split.


for _phantom, _task in PHANTOMS.items():

    rule:
        name:
            f"phantom_{_phantom}"
        output:
            root=directory(f"{RESULTS}/phantoms/{_phantom}"),
        log:
            f"{RESULTS}/logs/phantom_{_phantom}.log",
        benchmark:
            f"{RESULTS}/benchmarks/phantom_{_phantom}.tsv"
        priority: res(f"phantom_{_phantom}", "priority")
        conda:
            "../../envs/data.yaml"
        threads: res(f"phantom_{_phantom}", "threads")
        resources:
            **rule_resources(f"phantom_{_phantom}"),
        params:
            dataset=_phantom,
            phantom=config["data"][_task]["phantom"],
        script:
            "../scripts/phantom.py"


rule prepare_data:
    input:
        unpack(lambda wc: data_inputs(wc.task)),
    output:
        split=f"{RESULTS}/{{task}}/data/split.csv",
        excluded=f"{RESULTS}/{{task}}/data/excluded.csv",
        meta=f"{RESULTS}/{{task}}/data/meta.json",
        arrays=directory(f"{RESULTS}/{{task}}/data/arrays"),
    log:
        f"{RESULTS}/logs/prepare_data/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{task}}.tsv"
    wildcard_constraints:
        task=one_of(PREPARED_TASKS),  # generated tasks' data come from rule synthetic_data
    priority: res("prepare_data", "priority")
    conda:
        "../../envs/data.yaml"
    threads: res("prepare_data", "threads")
    resources:
        **rule_resources("prepare_data", scale_mem=True),
    params:
        data=lambda wc: prepare_params(wc.task),
        split=config["split"],
    script:
        "../scripts/prepare_data.py"
