import logging

from sgdsmooth.data import download_cifar100

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
download_cifar100(snakemake.params.root)
