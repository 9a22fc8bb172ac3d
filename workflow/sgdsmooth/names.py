"""The names a config may use and the data set sizes: torch-free, so that the Snakefile
(which imports this to check configs) starts fast."""

OPTIMIZERS = ("sgd", "shb", "nshb")
LABELS = {"sgd": "SGD", "shb": "SHB", "nshb": "NSHB"}  # how text, tables and figures name them
PROTOCOLS = ("cbs", "epochs")
DATASETS = ("digits", "cifar100", "fashion_mnist")
MODELS = ("resnet18", "small_cnn", "mnist_cnn")
PRECISIONS = ("fp32", "bf16")  # of the training forward pass
# Training-set sizes, known before loading so that configs can be checked up front.
TRAIN_SIZES = {"digits": 1438, "cifar100": 50_000, "fashion_mnist": 60_000}
TEST_SIZES = {"digits": 359, "cifar100": 10_000, "fashion_mnist": 10_000}
# Classes per data set: chance accuracy is 1/C and the loss of a uniform guess ln C, against
# which the analysis judges whether a run has collapsed (collect.collapsed).
NUM_CLASSES = {"digits": 10, "cifar100": 100, "fashion_mnist": 10}
