"""Tools for people writing scripts: ``dicomd test-script``, ``dicomd replay``, their reports,
the throwaway sandbox daemon, synthetic DICOM and the pytest plugin. They build a daemon
through the composition root; the core never imports them."""
