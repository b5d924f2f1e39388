"""Known IDX data sets: their four files, public mirrors and pinned checksums.

A file is accepted when either fingerprint matches: the sha256 of the upstream ``.gz`` (with its
size), or the sha256 of the decompressed IDX content. The second exists because repackagers
(Debian's ``dataset-fashion-mnist``) recompress the same images, so their ``.gz`` bytes differ.
"""

from dataclasses import dataclass, field

from pipeline.data.split import VALIDATION_SIZE

FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class FileFingerprint:
    """What identifies one legitimate copy of a data file (any field may be unknown)."""

    gz_size: int | None = None
    gz_sha256: str | None = None
    content_sha256: str | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """A named data set: where to fetch it and how to recognise a good copy."""

    name: str
    mirrors: tuple[str, ...] = ()
    fingerprints: dict[str, FileFingerprint] = field(default_factory=dict)
    class_names: tuple[str, ...] = tuple(str(digit) for digit in range(10))
    # Known before any download, so a bad validation_size fails at once; None when unknown.
    train_count: int | None = None

    @property
    def is_pinned(self) -> bool:
        """True when downloads of this data set are checked against known checksums."""
        return bool(self.fingerprints)


MNIST = DatasetInfo(
    name="mnist",
    train_count=60_000,
    mirrors=(
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    fingerprints={
        "train_images": FileFingerprint(
            9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train_labels": FileFingerprint(
            28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "test_images": FileFingerprint(
            1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "test_labels": FileFingerprint(
            4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    },
)

# Content hashes were taken from Debian's copy, whose decompressed bytes equal upstream's.
FASHION_MNIST = DatasetInfo(
    name="fashion_mnist",
    train_count=60_000,
    mirrors=(
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    fingerprints={
        "train_images": FileFingerprint(
            content_sha256="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
        ),
        "train_labels": FileFingerprint(
            content_sha256="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
        ),
        "test_images": FileFingerprint(
            content_sha256="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
        ),
        "test_labels": FileFingerprint(
            content_sha256="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        ),
    },
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
)

# The original self-test trained on 256 images; the default 5,000-image validation split comes
# off the front of the training file, so the generated file holds both.
SYNTHETIC = DatasetInfo(name="synthetic", train_count=VALIDATION_SIZE + 256)
CUSTOM = DatasetInfo(name="custom")

DATASETS = {info.name: info for info in (MNIST, FASHION_MNIST, SYNTHETIC, CUSTOM)}


def get_dataset(name: str) -> DatasetInfo:
    """Return the data set called ``name`` or raise a ConfigError listing the valid names."""
    from pipeline.errors import ConfigError

    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)} "
            "([data] dataset in luigi.cfg or --data-dataset)."
        ) from None
