"""Label quality: find probable label errors and measure reviewer agreement.

Pure numpy, no I/O, no module state; importing this package imports none of its submodules.

* :mod:`labelwise.quality.label_issues`: compare one image's human labels with a model's
  predictions under an :class:`~labelwise.quality.label_issues.IssueRule` and score the suspected
  issues (``missing_box``, ``spurious_box``, ``class_swap``, ``bad_localisation``).
* :mod:`labelwise.quality.agreement`: two reviewers' labels of the same images: box F1 at IoU 0.5
  with class match, Cohen's kappa for image-level class presence, and a merge rule (boxes both drew
  are kept, the rest need a third look).
"""
