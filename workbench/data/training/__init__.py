"""Labelled image datasets for training networks, with fixed splits and fingerprints.

>>> data = load_training_data("digits32")
>>> len(data.train), len(data.test), data.num_classes
(1347, 450, 10)
>>> image, label = data.train[0]
>>> tuple(image.shape), image.dtype
((3, 32, 32), torch.float32)

Every loader returns a :class:`TrainingData`: a ``train`` and a ``test`` torch ``Dataset``
whose items are ``(image, label)`` (image a float32 tensor of shape (3, H, W), already
normalised; label a Python int), the class names, the :class:`~workbench.models.Preprocessing`
(input size, RGB mean and std) a network trained on it must declare, a sha256
``fingerprint`` of the data and its split, and a one-line ``description``. Each split has a
``targets`` list (every item's label); digits32's splits also carry ``indices``, the rows of
``load_digits()`` they hold.

Datasets
--------
=============  ====================  ===============  =====  ==================================
name           source                train / test     input  train augmentation
=============  ====================  ===============  =====  ==================================
digits32       scikit-learn digits   1,347 / 450      32     shift <= 2 px over the background
cifar10        CIFAR-10 (python)     50,000 / 10,000  32     crop 32 of 4-px zero pad + h-flip
cifar100       CIFAR-100 (python)    50,000 / 10,000  32     crop 32 of 4-px zero pad + h-flip
imagenet       ImageFolder tree      train/ / val/    224    RandomResizedCrop(224) + h-flip
cub200         CUB-200-2011          5,994 / 5,794    224*   RandomResizedCrop + h-flip*
stanford_cars  devkit .mat files     8,144 / 8,041    448*   ``"fine_grained"``*
fgvc_aircraft  variant lists         6,667 / 3,333    448*   ``"fine_grained"``*
mini_imagenet  FSCIL csv splits      csv rows         84*    RandomResizedCrop + h-flip*
fg_motifs      generated (PART)      options          32     shift <= 2 px (reflect)
mada_scenes    generated (MADA)      options          48*    h-flip (segmentation domains)
=============  ====================  ===============  =====  ==================================

(*) an option of the loader (``load_training_data(name, **options)``): the image files'
``size``, test ``resize`` and ``augmentation`` (:mod:`workbench.data.training.transforms`, the one
builder of every file dataset's transforms, ImageNet's too); the generators' seed and sizes.
``cub200`` is read by :mod:`~workbench.data.training.cub200` for SAVC (224 px, the default) and
PART (448 px); the two views have different fingerprints. The method-generated sets live in their
method's package (``workbench.methods.part.data``, ``workbench.methods.mada.data``) and are
documented there; the registry (``base._LOADERS``) names every dataset and its loader.

**digits32** -- the 1,797 8x8 handwritten digits of ``sklearn.datasets.load_digits`` (integer
values 0..16, ten classes "0".."9"), divided by 16 to [0, 1], upsampled to 32x32 with
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` and replicated to 3
channels (grey as RGB), so that a trained network also accepts the RGB study images. Split:
``sklearn.model_selection.train_test_split(arange(1797), test_size=0.25, stratify=target,
random_state=0)``: 1,347 train and 450 test images, every class at 25 % +- 1 image, the same
for every run whatever its seed. Normalisation: the mean and population std of all pixels of
the upsampled train split, one value for all three channels (mean 0.30522, std 0.32354, to 5
places; exact values in ``preprocessing``). Augmentation: a translation by a uniform random
integer offset in [-2, 2] px along each axis (equivalently: pad by 2 px, random 32x32 crop); the
uncovered border is filled with the digits' blank background (raw value 0, i.e. ``-mean/std``
after normalisation). No flips: a mirrored digit is another symbol. All tensors stay in memory.

**cifar10, cifar100** -- the official "CIFAR-10/100 python version" archives
(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, ``cifar-100-python.tar.gz``)
extracted into ``root`` (default ``$WORKBENCH_DATA/training/<name>``)::

    <root>/cifar-10-batches-py/{data_batch_1..data_batch_5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

Each batch file is a Python pickle (protocol 2, bytes keys) of a dict with ``b"data"``: a uint8
array of shape (N, 3072), each row one 32x32 image as its red, green and blue planes in
row-major order, and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100): N ints. The
meta file holds ``b"label_names"`` / ``b"fine_label_names"``, which become ``classes``.
``download=True`` fetches and extracts the archive through torchvision when a file is missing;
otherwise, or when the download fails, a :class:`~workbench.errors.DataError` names the folder,
the layout above and the URL. The files are read by our own reader (which admits only numpy
arrays in the pickles), so truncated or malformed files raise a ``DataError`` naming the file.
Normalisation, per RGB channel, the statistics of each training set:
CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616); CIFAR-100 mean
(0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762). (Much CIFAR-10 code uses std
(0.2023, 0.1994, 0.2010), which is not the pixel std; we use the true one.) Augmentation:
``torchvision.transforms.v2.RandomCrop(32, padding=4)`` (zero padding, i.e. black, before
normalisation) then ``RandomHorizontalFlip()``, implemented directly with the same RNG draws in
the same order, so that it yields the very images of that torchvision pipeline, faster.

**imagenet** -- an ImageFolder tree (``torchvision.datasets.ImageFolder``) that the user
provides (ImageNet is never downloaded)::

    <root>/train/<class>/<image>     e.g. train/n01440764/n01440764_10026.JPEG
    <root>/val/<class>/<image>       the 50,000 validation images sorted into class folders

The class folders of ``train`` and ``val`` must be the same (else ``DataError``); ``classes``
are the folder names, sorted; labels index them. Train: ``RandomResizedCrop(224)`` +
``RandomHorizontalFlip()``; test (``val``): ``Resize(256)`` + ``CenterCrop(224)``, exactly
the ``Preprocessing(224, resize_size=256)`` declared; ImageNet mean (0.485, 0.456, 0.406) and
std (0.229, 0.224, 0.225).

Randomness
----------
Augmentations draw only from torch's global RNG of the process that calls ``__getitem__``
(``torch.randint``/``torch.rand`` inside the transforms; no numpy or ``random``): restoring
``torch.set_rng_state`` replays the same augmentations, which a bit-identical resume needs.
DataLoader workers get their own torch seeds from the main process's RNG, as usual. The
``test`` split and ``augment=False`` draw nothing.

Fingerprints
------------
``fingerprint`` is a sha256 hex digest of the data and the split, independent of ``augment``
and of any seed. digits32: a recipe tag, the raw ``load_digits`` images and labels and the
train and test indices. cifar: each file's relative name, size and bytes, in the fixed order
train batches, test batch, meta. imagenet: the sorted listing of every image's relative path
and size in bytes (image content is not hashed: reading 1.28 M files at every load would take
far too long; a replaced file of the same size keeps the fingerprint). cub200, stanford_cars,
fgvc_aircraft, mini_imagenet: the annotation files (not the images) and the view's size and
resize.
"""

from workbench.data.training.base import (
    TrainingData,
    default_root,
    list_training_datasets,
    load_training_data,
)
from workbench.data.training.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
)

__all__ = [
    "CIFAR100_MEAN", "CIFAR100_STD", "CIFAR10_MEAN", "CIFAR10_STD", "TrainingData",
    "default_root", "list_training_datasets", "load_training_data",
]
