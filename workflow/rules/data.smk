# Data: phantom datasets in the real on-disk formats, then validation, resizing, z-scoring and the split.


rule phantom_brats:
    output:
        root=directory(f"{RESULTS}/phantoms/brats"),
    params:
        phantom=config["data"]["glioma"]["phantom"],
    log:
        f"{RESULTS}/logs/phantom_brats.log",
    benchmark:
        f"{RESULTS}/benchmarks/phantom_brats.tsv"
    threads: res("phantom_brats", "threads")
    resources:
        mem_mb=res("phantom_brats", "mem_mb"),
        runtime=res("phantom_brats", "runtime"),
        gpu=res("phantom_brats", "gpu"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/phantom_brats.py"


rule phantom_mrnet:
    output:
        root=directory(f"{RESULTS}/phantoms/mrnet"),
    params:
        phantom=config["data"]["knee"]["phantom"],
    log:
        f"{RESULTS}/logs/phantom_mrnet.log",
    benchmark:
        f"{RESULTS}/benchmarks/phantom_mrnet.tsv"
    threads: res("phantom_mrnet", "threads")
    resources:
        mem_mb=res("phantom_mrnet", "mem_mb"),
        runtime=res("phantom_mrnet", "runtime"),
        gpu=res("phantom_mrnet", "gpu"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/phantom_mrnet.py"


rule prepare_data:
    input:
        unpack(lambda wc: data_inputs(wc.task)),
    output:
        split=f"{RESULTS}/{{task}}/data/split.csv",
        excluded=f"{RESULTS}/{{task}}/data/excluded.csv",
        meta=f"{RESULTS}/{{task}}/data/meta.json",
        arrays=directory(f"{RESULTS}/{{task}}/data/arrays"),
    wildcard_constraints:
        task="glioma|knee",  # the synthetic task's data come from rule synthetic_data
    params:
        data=lambda wc: {**config["data"][wc.task], "root": data_root(wc.task),
                         "boxes_dir": boxes_dir(wc.task) if wc.task == "knee" else None},
        split=config["split"],
    log:
        f"{RESULTS}/logs/prepare_data/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{task}}.tsv"
    threads: res("prepare_data", "threads")
    resources:
        mem_mb=lambda wc, attempt: res("prepare_data", "mem_mb") * attempt,
        runtime=res("prepare_data", "runtime"),
        gpu=res("prepare_data", "gpu"),
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/prepare_data.py"
