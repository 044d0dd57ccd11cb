# Proxmox VE nodes, bandwidth jobs and the traffic quota (issue 19).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0007_usage_samples'),
    ]

    operations = [
        migrations.CreateModel(
            name='TrafficOverage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('period_start', models.DateTimeField(verbose_name='period started')),
                ('used_bytes', models.BigIntegerField(verbose_name='traffic used, bytes')),
                ('quota_bytes', models.BigIntegerField(verbose_name='quota, bytes')),
                ('action', models.CharField(choices=[('notice', 'Notice only'), ('throttle', 'Throttle to the speed below')], max_length=16, verbose_name='over-quota action')),
                ('created_at', models.DateTimeField(auto_now_add=True, verbose_name='detected')),
            ],
            options={
                'verbose_name': 'traffic over quota',
                'verbose_name_plural': 'traffic over quota',
                'ordering': ['-pk'],
            },
        ),
        migrations.AddField(
            model_name='hypervisornode',
            name='ca_certificate',
            field=models.TextField(blank=True, help_text="The node's CA (e.g. /etc/pve/pve-root-ca.pem). Empty: the system's trusted CAs.", verbose_name='TLS CA certificate (PEM)'),
        ),
        migrations.AddField(
            model_name='hypervisornode',
            name='kind',
            field=models.CharField(choices=[('libvirt', 'libvirt / KVM'), ('proxmox', 'Proxmox VE')], default='libvirt', max_length=16, verbose_name='kind'),
        ),
        migrations.AddField(
            model_name='hypervisornode',
            name='pve_node',
            field=models.CharField(blank=True, max_length=100, verbose_name='Proxmox node name'),
        ),
        migrations.AddField(
            model_name='hypervisornode',
            name='token_id',
            field=models.CharField(blank=True, help_text='user@realm!token-name, e.g. portal@pve!provisioning.', max_length=200, verbose_name='API token ID'),
        ),
        migrations.AddField(
            model_name='hypervisornode',
            name='token_secret',
            field=models.CharField(blank=True, max_length=200, verbose_name='API token secret'),
        ),
        migrations.AddField(
            model_name='plan',
            name='over_quota_action',
            field=models.CharField(choices=[('notice', 'Notice only'), ('throttle', 'Throttle to the speed below')], default='notice', help_text="What happens once a server's traffic passes the quota in a period: the customer is told once either way.", max_length=16, verbose_name='over-quota action'),
        ),
        migrations.AddField(
            model_name='plan',
            name='over_quota_mbps',
            field=models.PositiveIntegerField(blank=True, help_text='The port speed past the quota, for the throttle action.', null=True, verbose_name='throttled speed, Mbit/s'),
        ),
        migrations.AddField(
            model_name='virtualmachine',
            name='bandwidth_mbps',
            field=models.PositiveIntegerField(blank=True, null=True, verbose_name='throttled to, Mbit/s'),
        ),
        migrations.AddField(
            model_name='virtualmachine',
            name='vmid',
            field=models.PositiveIntegerField(blank=True, null=True, verbose_name='Proxmox VMID'),
        ),
        migrations.AlterField(
            model_name='hypervisornode',
            name='bridge',
            field=models.CharField(blank=True, help_text="Used instead of a libvirt network when set; Proxmox VE: the VMs' bridge, e.g. vmbr0.", max_length=100, verbose_name='bridge'),
        ),
        migrations.AlterField(
            model_name='hypervisornode',
            name='uri',
            field=models.CharField(help_text='libvirt: qemu:///system for this host, qemu+ssh://user@host/system for a remote one. Proxmox VE: the API URL, https://pve.example.com:8006.', max_length=255, verbose_name='connection URI'),
        ),
        migrations.AlterField(
            model_name='ostemplate',
            name='volume',
            field=models.CharField(help_text="libvirt: the qcow2 volume's name; Proxmox VE: the template VM's VMID.", max_length=255, verbose_name='volume in the storage pool'),
        ),
        migrations.AlterField(
            model_name='producttype',
            name='provisioner',
            field=models.CharField(choices=[('manual', 'Manual (staff enter the IP address)'), ('ip_pool', 'Automatic from an IP pool'), ('libvirt', 'Virtual machine on a libvirt/KVM node'), ('proxmox', 'Virtual machine on a Proxmox VE node')], default='manual', max_length=16, verbose_name='provisioner'),
        ),
        migrations.AlterField(
            model_name='provisioningjob',
            name='action',
            field=models.CharField(choices=[('create', 'Create'), ('start', 'Start'), ('shutdown', 'Shut down'), ('reboot', 'Reboot'), ('power_off', 'Power off'), ('suspend', 'Suspend'), ('unsuspend', 'Unsuspend'), ('resize', 'Resize'), ('reinstall', 'Reinstall'), ('terminate', 'Terminate'), ('bandwidth', 'Set bandwidth')], max_length=16, verbose_name='action'),
        ),
        migrations.AddConstraint(
            model_name='plan',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('over_quota_action', 'throttle'), _negated=True), models.Q(('over_quota_mbps__gte', 1), ('over_quota_mbps__isnull', False)), _connector='OR'), name='plan_throttle_has_speed'),
        ),
        migrations.AddField(
            model_name='trafficoverage',
            name='order',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='traffic_overages', to='orders.order', verbose_name='order'),
        ),
        migrations.AddConstraint(
            model_name='trafficoverage',
            constraint=models.UniqueConstraint(fields=('order', 'period_start'), name='traffic_overage_once_per_period'),
        ),
    ]
