# CIFAR-100 is fetched once; torchvision verifies the archive's MD5. Digits ship with
# scikit-learn and need no rule.


rule download_cifar100:
    output:
        expand(
            "{root}/cifar100/cifar-100-python/{name}",
            root=config.get("data_root", "resources"),
            name=["train", "test", "meta"],
        ),
    log:
        f"{R}/logs/download_cifar100.log",
    conda:
        ENV
    params:
        root=lambda wildcards: f"{config.get('data_root', 'resources')}/cifar100",
    script:
        "../scripts/download_cifar100.py"
