"""Orthanc, the baseline DICOM server: started on a free loopback port with its own configuration and storage.

Debian's package (`apt-get install orthanc`, version 1.10 in Debian 12) installs the server as
/usr/sbin/Orthanc. The benchmarks start it with a configuration file of their own and stop it by
process id. They do not use the service that the package installs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .common import free_port, stop_process, wait_for

ORTHANC_BINARY = '/usr/sbin/Orthanc'
# Orthanc decodes JPEG 2000 only with the GDCM plugin (Debian package orthanc-gdcm), because the DCMTK
# that Orthanc is built on has no JPEG 2000 codec.
GDCM_PLUGIN = Path('/usr/share/orthanc/plugins/libOrthancGdcm.so')


def orthanc_binary() -> str | None:
    """Return the path of the Orthanc server, or None when it is not installed."""
    return shutil.which('Orthanc') or (ORTHANC_BINARY if Path(ORTHANC_BINARY).exists() else None)


class OrthancServer:
    """One Orthanc process with its storage and index under `folder`, on a free port for 127.0.0.1 clients.

    Without `store_from_ae_title` its DICOM server is off. With it, the DICOM server (AE title
    `dicom_ae_title`, port `dicom_port`) accepts C-STORE only from that calling AE title on 127.0.0.1.
    """

    dicom_ae_title = 'ORTHANC'

    def __init__(self, folder: Path, *, store_from_ae_title: str | None = None) -> None:
        binary = orthanc_binary()
        if binary is None:
            raise RuntimeError('Orthanc is not installed: install it with `apt-get install orthanc`')
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dicom_port: int | None = None
        self.url = f'http://127.0.0.1:{self.port}'
        config = {
            'Name': 'SecondOpinionBenchmark',
            'StorageDirectory': str(folder / 'storage'),
            'IndexDirectory': str(folder / 'index'),
            'HttpPort': self.port,
            'RemoteAccessAllowed': False,
            'AuthenticationEnabled': False,
            'DicomServerEnabled': False,
            'HttpServerEnabled': True,
            'Plugins': [str(GDCM_PLUGIN)] if GDCM_PLUGIN.exists() else [],
            # Orthanc's defaults, written out because they decide what the benchmark compares.
            'StorageCompression': False,
            'HttpCompressionEnabled': False,
            'ConcurrentJobs': 2,
            'HttpThreadsCount': 50,
        }
        if store_from_ae_title is not None:
            # NOTE: Orthanc 1.10 has no setting for the DICOM listen address, so the port is open on every
            # interface. These settings make it accept associations only from the one AE title on 127.0.0.1.
            self.dicom_port = free_port()
            config.update({
                'DicomServerEnabled': True,
                'DicomAet': self.dicom_ae_title,
                'DicomPort': self.dicom_port,
                'DicomCheckCalledAet': True,
                'DicomAlwaysAllowStore': False,
                'DicomAlwaysAllowEcho': False,
                'DicomCheckModalityHost': True,
                # [AE title, host, port]: the port is where Orthanc would send to, which it never does here.
                'DicomModalities': {'sender': [store_from_ae_title, '127.0.0.1', 104]},
            })
        config_path = folder / 'orthanc.json'
        config_path.write_text(json.dumps(config, indent=2))
        self.log_path = folder / 'orthanc.log'
        log = self.log_path.open('wb')
        self.process = subprocess.Popen([binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                        cwd=folder)
        log.close()
        try:
            wait_for(f'{self.url}/system', self.process, timeout=30)
        except (RuntimeError, TimeoutError):
            stop_process(self.process)
            raise RuntimeError(f'Orthanc did not start; its log:\n{self.log_path.read_text(errors="replace")}')

    @property
    def pid(self) -> int:
        return self.process.pid

    def version(self) -> str:
        import httpx

        return httpx.get(f'{self.url}/system', trust_env=False).json()['Version']

    def stop(self) -> None:
        stop_process(self.process)
