"""Base models for the demos and experiments.

- :mod:`cs_fast.models.digits`: a small convolutional autoencoder for
  scikit-learn's 8x8 digits (dimensionality reduction, paper section 5.3),
  with weights shipped in the package.
- :mod:`cs_fast.models.train_digits`: the script that trained those weights.
- :mod:`cs_fast.models.faces`: facenet-pytorch's pre-trained MTCNN as a
  top-face-box model, certified in Jaccard distance (paper section 5.1).
- :mod:`cs_fast.models.lpips_adapter`: LPIPS as ``sqfeat`` on features
  extracted once per image (paper section 5.2).
- :mod:`cs_fast.models.perceptual`: the digits decoder as a generator,
  certified in LPIPS.

The command-line sweeps over these models (``cs-fast faces``, ``cs-fast
perceptual``), their pictures and reports are applications, in
:mod:`cs_fast_apps.faces` and :mod:`cs_fast_apps.perceptual`; nothing here
imports them.

facenet-pytorch and lpips import torchvision, which does not import beside the
CPU build of torch; :mod:`cs_fast.models._torchvision_compat` imports them
against a small stand-in there (``pip install --no-deps facenet-pytorch==2.6.0
lpips==0.1.4``, plus pillow, requests and scikit-image for the sample photos).

Submodules are imported on demand so that ``import cs_fast`` never needs the
optional demo dependencies (scikit-learn, matplotlib).
"""
