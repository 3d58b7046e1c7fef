"""Base models for the demos and experiments.

- :mod:`cs_fast.models.digits`: a small convolutional autoencoder for
  scikit-learn's 8x8 digits (dimensionality reduction, paper section 5.3),
  with weights shipped in the package.
- :mod:`cs_fast.models.train_digits`: the script that trained those weights.

Submodules are imported on demand so that ``import cs_fast`` never needs the
optional demo dependencies (scikit-learn, matplotlib).
"""
